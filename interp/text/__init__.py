"""Logic on text: grading final answers, and splitting chains of thought into classified thoughts."""
