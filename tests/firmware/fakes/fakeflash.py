"""FakeFlash: the Pico W's LittleFS, mounted into the interpreter with ``os.mount`` so the firmware's own
``open``/``os.stat``/``os.statvfs`` calls reach it unchanged.

Real size and real failures: 212 blocks of 4 KiB (the 848 KiB a Pico W leaves for files); a file takes
ceil(size / 4096) blocks, except small ones LittleFS inlines in its directory (<= ``INLINE_MAX`` bytes); a
directory takes a metadata pair (2 blocks), the root too.  ``os.statvfs`` reports what is left; a write that
needs more blocks than are free (any write, once none is free) raises OSError(28) (ENOSPC, what LittleFS's
LFS_ERR_NOSPC becomes); with
``read_only`` every change raises OSError(30) (EROFS).  Each write costs virtual time (1 ms, plus 45 ms per block
erased), as a flash write stalls the RP2040.

The bytes live in a folder of the interpreter's in-memory filesystem (``store``), not in Python objects, so the
soak test's heap measurement sees the firmware's RAM, not the fake flash's contents.  It is a fake of the flash
chip and LittleFS, which cannot exist in WebAssembly; it does not model wear, power cuts or LittleFS's
copy-on-write overhead.
"""

import os

import fakeclock

BLOCK = 4096
BLOCKS = 212
INLINE_MAX = 256
WRITE_MS = 1
ERASE_MS = 45
ENOSPC = 28
EROFS = 30
_mounts = [0]


def _blocks(size):
    return 0 if size <= INLINE_MAX else (size + BLOCK - 1) // BLOCK


class FlashFile:
    """A file open for writing: every write is checked against the free blocks."""

    def __init__(self, fs, path, mode):
        self.fs = fs
        self.path = path
        self.f = open(fs.store + path, mode)
        self.size = self.f.seek(0, 2) if "a" in mode else 0

    def write(self, data):
        fs = self.fs
        if fs.read_only:
            raise OSError(EROFS)
        n = len(data.encode() if isinstance(data, str) else data)
        grow = _blocks(self.size + n) - _blocks(self.size)
        free = fs.free_blocks()
        if grow > free or free == 0:  # even an inlined file's metadata commit needs a spare block
            raise OSError(ENOSPC)
        clock = fakeclock.current()
        if clock is not None:
            clock.advance(WRITE_MS + ERASE_MS * grow)
        fs.writes += 1
        fs.bytes_written += n
        self.f.write(data)
        fs._resize(self.path, self.size + n)
        self.size += n
        return n

    def read(self, n=-1):
        return self.f.read(n)

    def flush(self):
        self.f.flush()

    def seek(self, offset, whence=0):
        return self.f.seek(offset, whence)

    def tell(self):
        return self.f.tell()

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FakeFlash:
    def __init__(self, blocks=BLOCKS):
        _mounts[0] += 1
        self.store = "/flashstore%d" % _mounts[0]
        os.mkdir(self.store)
        self.blocks = blocks
        self.read_only = False
        self.writes = 0
        self.bytes_written = 0
        self.sizes = {}  # path -> bytes
        self.used = 2  # the root directory's metadata pair
        self.mountpoint = None

    def mount_at(self, path):
        """Mount at ``path`` (e.g. /flash3) and return it: that is the firmware's root."""
        os.mount(self, path)
        self.mountpoint = path
        return path

    # -- accounting: blocks in use, kept up to date on every change (no walk of the files)
    def _resize(self, path, size):
        old = self.sizes.get(path)
        self.used += _blocks(size) - (_blocks(old) if old is not None else 0)
        self.sizes[path] = size

    def _forget(self, path):
        old = self.sizes.pop(path, None)
        if old is not None:
            self.used -= _blocks(old)

    def used_blocks(self):
        return self.used

    def free_blocks(self):
        return self.blocks - self.used_blocks()

    def free_bytes(self):
        return self.free_blocks() * BLOCK

    def fill(self, name, nbytes):
        """Put a file of ``nbytes`` on the flash directly (the firmware's own files, a user's log...)."""
        with open(self.store + "/" + name, "wb") as f:
            chunk = b"\xff" * 4096
            left = nbytes
            while left > 0:
                f.write(chunk[: min(left, 4096)])
                left -= 4096
        self._resize("/" + name, nbytes)

    def fill_up(self, name, leave_bytes=0):
        """Grow the file ``name`` until only ``leave_bytes`` (rounded down to blocks) are free."""
        free = self.free_bytes() - leave_bytes
        if free > 0:
            self.fill(name, self.sizes.get("/" + name, 0) + free)

    def remove_file(self, name):
        os.remove(self.store + "/" + name)
        self._forget("/" + name)

    # -- the VFS protocol (paths are relative to the mount point, starting with "/")
    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def _change(self):
        if self.read_only:
            raise OSError(EROFS)

    def open(self, path, mode):
        if "w" in mode or "a" in mode or "+" in mode:
            self._change()
            if "w" in mode:
                try:
                    os.stat(self.store + path)
                    exists = True
                except OSError:
                    exists = False
                if not exists and self.free_blocks() <= 0:
                    raise OSError(ENOSPC)
            f = FlashFile(self, path, mode)
            if "w" in mode:
                self._resize(path, 0)
            return f
        return open(self.store + path, mode)

    def stat(self, path):
        return os.stat(self.store + path)

    def statvfs(self, path):
        free = self.free_blocks()
        return (BLOCK, BLOCK, self.blocks, free, free, 0, 0, 0, 0, 255)

    def ilistdir(self, path):
        return os.ilistdir(self.store + path)

    def remove(self, path):
        self._change()
        os.remove(self.store + path)
        self._forget(path)

    def rename(self, old, new):
        self._change()
        os.rename(self.store + old, self.store + new)
        size = self.sizes.get(old)
        self._forget(new)
        self._forget(old)
        if size is not None:
            self._resize(new, size)

    def mkdir(self, path):
        self._change()
        if self.free_blocks() < 2:
            raise OSError(ENOSPC)
        os.mkdir(self.store + path)
        self.used += 2

    def rmdir(self, path):
        self._change()
        os.rmdir(self.store + path)
        self.used -= 2

    def chdir(self, path):
        pass

    def getcwd(self):
        return "/"
