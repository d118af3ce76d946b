"""What the benchmark scripts show while they run and when they end: progress on stderr, tables on stdout.

Progress: rich's bar on a terminal (``gpuinit bench`` lets it through: it sets rich's ``TTY_COMPATIBLE`` when its own
stderr is one); elsewhere (a pipe, a file, a test) one plain line per step, ``[  12.3 s] 3/24 float32 normal``.
Tables: rich's, whose columns line up whatever their cells hold; on a terminal as wide as it is (cells wrap
within their columns), elsewhere at the table's own width, one line per row and the title on a line of its own, so
that the output stays parseable.
"""
import contextlib
import sys
import time


@contextlib.contextmanager
def progress(total, what):
    """Yield ``step(name)``, to be called as each of ``total`` steps starts; a step ends when the next starts."""
    from rich.console import Console

    console = Console(stderr=True)
    t0, done = time.perf_counter(), [0]
    if not console.is_terminal:
        def step(name):
            done[0] += 1
            print(f"[{time.perf_counter() - t0:7.1f} s] {done[0]}/{total} {name}", file=sys.stderr, flush=True)

        yield step
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console.print(f"{what}: {total} steps")  # a first whole line (gpuinit bench reads one: a usage error or not)
    with Progress(TextColumn(f"{what} [bold]{{task.description}}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("", total=total)

        def step(name):
            if done[0]:
                bar.advance(task)
            done[0] += 1
            bar.update(task, description=name)

        yield step
        bar.update(task, completed=total, description="done")


def print_table(columns, rows, title=None, right=()):
    """Print ``rows`` (sequences of cells, None as '-') under ``columns``, those named in ``right`` aligned right."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    tty = sys.stdout.isatty()
    table = Table(title=title if tty else None, title_justify="left", box=box.SIMPLE_HEAD)
    for k, name in enumerate(columns):  # a narrow terminal wraps text within its column (numbers stay whole)
        width = max((len(row[k]) for row in cells), default=1) if name in right else None
        table.add_column(name, justify="right" if name in right else "left", overflow="fold", min_width=width)
    for row in cells:
        table.add_row(*map(Text, row))  # Text: no markup in cells
    if tty:
        Console(highlight=False).print(table)
        return
    if title:
        print(title)
    console = Console(force_terminal=False, width=10_000, highlight=False)  # wide enough for any row: none wraps
    with console.capture() as text:
        console.print(table)
    print("\n".join(line.rstrip() for line in text.get().splitlines()).strip("\n"), flush=True)


def print_markdown(text):
    """Print a markdown report: rendered by rich on a terminal (its tables' columns lined up), else as it is."""
    if not sys.stdout.isatty():
        print(text, flush=True)
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(text))
