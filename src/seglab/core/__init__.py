"""What every stage stands on, importing nothing else of seglab: the user-error types that
become one line (`errors`), atomic writes (`atomic`), the one gate for reading checkpoint
files (`checkpoints`), the process rank helpers of a DDP job (`distributed`) and the
bootstrap intervals and paired tests over per-image counts (`significance`, NumPy only)."""
