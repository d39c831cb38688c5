"""Run a check in many threads at once with a tiny switch interval (thread-safety tests)."""
import sys
import threading

__all__ = ["run_in_threads"]


def run_in_threads(work, n=8, switch_interval=1e-6):
    """Call ``work(k)`` for ``k < n`` in ``n`` threads started together, with Python
    switching threads every ``switch_interval`` seconds; re-raise the first error."""
    errors = []

    def target(k):
        try:
            work(k)
        except Exception as e:          # pragma: no cover - re-raised below
            errors.append(e)
    old = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    if errors:
        raise errors[0]
