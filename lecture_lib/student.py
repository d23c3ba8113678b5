"""Write the student copies of the notebooks: every reference answer replaced by a stub.

``python -m lecture_lib.student notebooks student`` (or ``make student``) copies each notebook, replacing the
lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` with ``raise NotImplementedError`` at the same
indentation. CI runs the notebooks with the answers in place; students get the stubs, and the checkers in
``lecture_lib.exercises`` tell them what is still wrong.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
STUB = 'raise NotImplementedError("your code here")'


def strip_solutions(source: str) -> str:
    """``source`` with every solution block replaced by a stub at the block's indentation."""
    out, indent = [], None
    for line in source.splitlines(keepends=True):
        if indent is None:
            begin = BEGIN.match(line)
            if begin:
                indent = begin.group(1)
                out.append(f"{indent}{STUB}\n")
            else:
                out.append(line)
        elif END.match(line):
            indent = None
    if indent is not None:
        raise ValueError("a '# BEGIN SOLUTION' has no matching '# END SOLUTION'")
    return "".join(out)


def student_notebook(nb: dict) -> dict:
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            cell["source"] = strip_solutions(source).splitlines(keepends=True)
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    src, dst = (Path(a) for a in (args or ["notebooks", "student"]))
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.ipynb")):
        nb = student_notebook(json.loads(path.read_text()))
        (dst / path.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {dst / path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
