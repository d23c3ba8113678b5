"""What every kernel pays at import: no grammar builds or scipy.signal until they are used."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import lecture_lib, lecture_lib.panels, plotly.basewidget
assert "rfc3987_syntax.syntax_helpers" not in sys.modules, "rfc3987_syntax built its grammar at import"
assert "scipy.signal" not in sys.modules, "scipy.signal imported at import"
import jsonschema
check = jsonschema.FormatChecker()
assert check.conforms("https://example.org/ä?q=1", "iri")  # the deferred checker still works
assert not check.conforms("no iri \\\\ here", "iri")
assert "rfc3987_syntax.syntax_helpers" in sys.modules
from lecture_lib import experiments_monitoring as mon
assert abs(mon.ema([1.0, 1.0], 0.5)[-1] - 1.0) < 1e-12  # imports scipy.signal on first use
"""


def test_importing_the_library_builds_no_iri_grammar_and_skips_scipy_signal():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
