"""Checkpoints of :func:`samplers.sample`: save a run, resume it bit for bit.

``sample(..., checkpoint="run.ckpt", checkpoint_every=100)`` writes, every
``checkpoint_every`` transitions (and when interrupted), everything the rest of the run
depends on: the kernel state, the warmup strategy's state, the generator's state, the
parameters, and the draws and statistics so far. The file is written to a temporary
name and renamed over the old one, so a crash while writing leaves the previous
checkpoint intact. Calling ``sample`` again with the same arguments and the same path
resumes from it and gives the draws of the uninterrupted run, number for number; a run
that finished leaves a final checkpoint, so the same call returns its result at once.

A checkpoint written by another run (other chain count, dimension, lengths, kernel,
strategy or seed) or a damaged file is an error naming the path and what differs.
NumPy generators only (a CuPy generator's state cannot be saved yet).
"""
import os
import pickle

import numpy as np

__all__ = ["Checkpoint", "FORMAT"]

#: Version of the file layout.
FORMAT = 1


class Checkpoint:
    """A checkpoint file of one :func:`samplers.sample` call.

    Parameters
    ----------
    path : str or os.PathLike
    every : int
        Transitions (warmup and sampling together) between two saves.
    fingerprint : dict
        What identifies the run (checked on resume).
    """

    def __init__(self, path, every, fingerprint):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"checkpoint_every: expected a positive integer (transitions), "
                             f"got {every!r}")
        self.path = os.fspath(path)
        self.every = int(every)
        self.fingerprint = fingerprint

    def due(self, n_done):
        """Whether a save is due after ``n_done`` transitions in all."""
        return n_done % self.every == 0

    def load(self):
        """The saved payload, or None when there is no file yet.

        Raises
        ------
        ValueError
            The file cannot be read, or was written by another run.
        """
        if not os.path.exists(self.path):
            return None
        try:
            with open(self.path, "rb") as f:
                payload = pickle.load(f)
        except Exception as e:
            raise ValueError(f"checkpoint {self.path!r}: cannot be read ({type(e).__name__}: "
                             f"{e}); delete it to start afresh") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"checkpoint {self.path!r}: not a samplers checkpoint of format "
                             f"{FORMAT}")
        saved = payload["fingerprint"]
        diff = [f"{k}: checkpoint has {saved.get(k)!r}, this call has {v!r}"
                for k, v in self.fingerprint.items() if saved.get(k) != v]
        if diff:
            raise ValueError(f"checkpoint {self.path!r} was written by a different run ("
                             + "; ".join(diff) + "); use another path or delete it")
        return payload

    def save(self, **payload):
        """Write ``payload`` atomically (temporary file, fsync, rename)."""
        payload = {"format": FORMAT, "fingerprint": self.fingerprint, **payload}
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
