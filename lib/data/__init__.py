"""The data stage: ReDSM5 files -> validated records -> aligned evidence -> examples -> split ->
feature windows -> batches, each step one module, read in that order:

    corpus -> sentences -> align -> examples -> split -> features -> batching;  dataset = all of it

`python -m lib.data POSTS ANNOTATIONS` validates a corpus (lib/data/dataset.py).
"""
