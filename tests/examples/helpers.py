"""Shared checks of the example tests."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_size=100):
    """``path`` is a PNG file (8-byte signature) at least ``min_size`` pixels each way."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width > min_size and height > min_size, f"{path} is only {width}x{height}"
