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

#: What a checkpoint of each phase must hold besides ``format`` and ``fingerprint``.
_REQUIRED = {"warmup": {"phase", "n_done", "i", "state", "rng", "astate", "recorder"},
             "sampling": {"phase", "n_done", "i", "state", "rng", "params", "warmup_stats",
                          "sink"}}


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
            The file cannot be read (a folder, no permission), is damaged or truncated
            (not a whole pickle, or a payload missing what its phase needs, or counters
            out of range), or was written by another run; the message names the path.
        """
        if not os.path.exists(self.path):
            return None
        try:
            with open(self.path, "rb") as f:
                payload = pickle.load(f)
        except OSError as e:
            raise ValueError(f"checkpoint {self.path!r}: cannot be read ({type(e).__name__}: "
                             f"{e})") from None
        except Exception as e:      # EOFError, UnpicklingError, ... on a cut-off file
            size = os.path.getsize(self.path)
            raise ValueError(f"checkpoint {self.path!r} cannot be read: the file is damaged or "
                             f"truncated ({size} bytes; {type(e).__name__}: {e}); delete it "
                             f"to start afresh") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"checkpoint {self.path!r}: not a samplers checkpoint of format "
                             f"{FORMAT}")
        saved = payload.get("fingerprint")
        if not isinstance(saved, dict):
            raise ValueError(f"checkpoint {self.path!r} is damaged: it has no fingerprint; "
                             f"delete it to start afresh")
        diff = [f"{k}: checkpoint has {saved.get(k)!r}, this call has {v!r}"
                for k, v in self.fingerprint.items() if saved.get(k) != v]
        if diff:
            raise ValueError(f"checkpoint {self.path!r} was written by a different run ("
                             + "; ".join(diff) + "); use another path or delete it")
        self._check_payload(payload)
        return payload

    def _check_payload(self, payload):
        """A ValueError naming the path when the payload lacks what its phase needs or
        its counters are out of range for this run."""
        phase = payload.get("phase")
        if phase not in _REQUIRED:
            raise ValueError(f"checkpoint {self.path!r} is damaged: phase {phase!r}, expected "
                             f"'warmup' or 'sampling'; delete it to start afresh")
        missing = sorted(_REQUIRED[phase] - set(payload))
        if missing:
            raise ValueError(f"checkpoint {self.path!r} is damaged: a {phase} checkpoint "
                             f"without {missing}; delete it to start afresh")
        fp = self.fingerprint
        if {"n_warmup", "n_samples", "thin"} <= set(fp):
            total = fp["n_warmup"] + fp["n_samples"] * fp["thin"]
            last = fp["n_warmup"] if phase == "warmup" else fp["n_samples"] * fp["thin"]
            for key, hi in (("n_done", total), ("i", last)):
                v = payload[key]
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)) \
                        or not 0 <= v <= hi:
                    raise ValueError(f"checkpoint {self.path!r} is damaged: {key} = {v!r}, "
                                     f"expected an integer in [0, {hi}] for this {phase} "
                                     f"checkpoint; delete it to start afresh")

    def save(self, **payload):
        """Write ``payload`` atomically (temporary file, fsync, rename)."""
        payload = {"format": FORMAT, "fingerprint": self.fingerprint, **payload}
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
