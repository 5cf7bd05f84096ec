"""The evaluation stage: model -> logits (inference) -> spans (span_search, decoding) -> null
threshold (null_threshold) -> metrics (metrics); evaluate_run orchestrates it for a run directory
and html_report renders what it found.
"""
