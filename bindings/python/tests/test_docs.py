"""docs/bindings/python.md's example runs as printed."""

import contextlib
import io
import os
import pathlib
import re
import unittest

from support import TempDirTest

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "bindings" / "python.md"


class DocExampleTest(TempDirTest):
    def test_the_example_runs(self):
        blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
        self.assertTrue(blocks, f"no python block in {DOC}")
        example = blocks[0]
        self.assertLessEqual(len(example.strip().splitlines()), 25, "the example stays short")
        out = io.StringIO()
        cwd = os.getcwd()
        os.chdir(self.dir)  # it opens ./claps-data
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(example, str(DOC), "exec"), {"__name__": "__doc_example__"})
        finally:
            os.chdir(cwd)
        printed = out.getvalue()
        self.assertIn("Snapshot(article=a1, total=0, viewers=1, mine=0)", printed)
        self.assertIn("30 30 30 False", printed)
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "claps-data")))


if __name__ == "__main__":
    unittest.main()
