import os
import sys

# Two threads on a loaded 2-core machine were 8-14x slower than one (environment spec): pin one thread for the
# tests and for every script they start in a subprocess.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
import compat  # noqa: E402,F401  (before any torchvision import)
