"""Sequential writes into existing files that bypass the page cache (``O_DIRECT``) where the file system allows it.

A buffered write copies every byte into the page cache and the kernel writes it back later; on many machines
that costs a CPU core per few hundred MB/s (this one: 3 s of system time per GB), which save_init's fills need.
``Writer.write(offset, bytes)`` takes runs of consecutive bytes: whole aligned 4 KiB pages go through an aligned
staging buffer with ``O_DIRECT``, the unaligned head and tail of a run (and everything, where ``O_DIRECT`` is
refused: tmpfs, some network file systems) through ordinary writes. Runs of several processes may meet inside
a page: those pages are written buffered by each, never directly, so no write covers another's bytes.
"""
import mmap
import os

PAGE = 4096
STAGE = 32 << 20  # bytes staged per direct write


class Writer:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            self.direct = os.open(path, os.O_WRONLY | os.O_DIRECT | getattr(os, "O_CLOEXEC", 0))
        except (AttributeError, OSError):
            self.direct = None
        self.buf = mmap.mmap(-1, STAGE) if self.direct is not None else None
        self.start = self.end = 0  # the run so far: file bytes [start, end), those from ``start`` on staged
        self.staged = 0

    def write(self, offset, data):
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return
        if self.direct is None:
            _pwrite(self.fd, view, offset)
            return
        if offset != self.end:  # a new run
            self._finish()
            self.start = self.end = offset
        if not self.staged and self.start % PAGE:  # up to the next page boundary: buffered (a short run stays so)
            head = min(view.nbytes, -self.start % PAGE)
            _pwrite(self.fd, view[:head], self.start)
            view = view[head:]
            self.start += head
            self.end += head
        while view.nbytes:
            n = min(view.nbytes, STAGE - self.staged)
            self.buf[self.staged:self.staged + n] = view[:n]
            self.staged += n
            self.end += n
            view = view[n:]
            if self.staged == STAGE:
                self._direct(STAGE)

    def _direct(self, n):
        """Write the first ``n`` staged bytes (a multiple of PAGE) directly; keep the rest staged."""
        try:
            _pwrite(self.direct, memoryview(self.buf)[:n], self.start)
        except OSError:  # refused after all (an odd device): buffered from now on
            _pwrite(self.fd, memoryview(self.buf)[:n], self.start)
            os.close(self.direct)
            self.direct = None
        rest = self.staged - n
        if rest:
            self.buf.move(0, n, rest)
        self.start += n
        self.staged = rest

    def _finish(self):
        if self.direct is not None and self.staged:
            whole = self.staged - self.staged % PAGE
            if whole:
                self._direct(whole)
        if self.staged:  # the run's unaligned tail
            _pwrite(self.fd, memoryview(self.buf)[:self.staged], self.start)
            self.start += self.staged
            self.staged = 0

    def close(self):
        try:
            self._finish()
        finally:
            os.close(self.fd)
            if self.direct is not None:
                os.close(self.direct)
            if self.buf is not None:
                self.buf.close()


def _pwrite(fd, view, where):
    while view.nbytes:
        n = os.pwrite(fd, view, where)
        view, where = view[n:], where + n
