"""The training stage: the loss, the optimizer and schedule, one optimizer step (step), the loop
(trainer), starting or resuming a run safely (run_setup), and hyper-parameter search (tuning).
"""
