"""Answer extraction and grading for math outputs: extract the final answer, then test equivalence.

Extraction takes the model's *final* answer (last complete `\\boxed{}`, else `#### X`, else "the
answer is X", else the last number) and never searches the output for the gold: an output that
mentions the gold on the way to a different answer is wrong. Extraction takes time linear in the
output's length (braces are matched in one pass; only the last `MAX_ANSWER_PHRASES` "answer is"
phrases, each cut to `MAX_PHRASE_CHARS`, are read), so no output can stall it.

Equivalence: normalise both sides (dollar signs, thousands commas, units, `\\text{}`, degrees), then
compare numbers exactly / within a relative tolerance when both sides are plain numbers, else ask
`math-verify` for symbolic equivalence. math-verify runs in a separate worker process: its own
timeout relies on SIGALRM (main thread only) and a signal cannot stop a long C-level computation
(sympy on `2^{2^{2^{10}}}` grows memory for minutes), whereas a process can be killed. So
`is_equivalent` works from any thread and honours its timeout.

Inputs: text (`str`), or a number (`int`, finite `float`, `Fraction`) that is graded as the number
it is; a model output may also be None (no answer). Anything else (bytes, bool, NaN, infinity,
None as gold) raises a `TypeError`/`ValueError` that says what was passed.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import re
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from numbers import Integral, Real

__all__ = [
    "Grade",
    "extract_answer",
    "extract_answer_with_method",
    "normalize_answer",
    "parse_number",
    "is_equivalent",
    "grade",
    "as_answer_text",
    "symbolic_timeouts",
    "shutdown_workers",
]

logger = logging.getLogger(__name__)

REL_TOL = Fraction(1, 10**6)
MAX_ANSWER_PHRASES = 50  # "the answer is" phrases read, from the last one back
MAX_PHRASE_CHARS = 500  # of the text after each "the answer is" (an answer is never longer)


# --------------------------------------------------------------------------------------------------
# Inputs


def as_answer_text(value: object, role: str, allow_none: bool = False) -> str | None:
    """`value` as text to grade: a str as is, an int or finite float/Fraction as its decimal form.

    `role` ("output", "gold", "predicted") names the argument in the error for anything else.
    """
    if isinstance(value, str):
        return value
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or value is None or isinstance(value, bytes | bytearray):
        hint = " (decode it to str first)" if isinstance(value, bytes | bytearray) else ""
        raise TypeError(
            f"the {role} must be a str or a number, not {type(value).__name__} {value!r}{hint}"
        )
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}" if value.denominator != 1 else str(value)
    if isinstance(value, Real):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"the {role} is {number}, not a finite number: it cannot be graded")
        return format(Decimal(repr(number)), "f")
    raise TypeError(f"the {role} must be a str or a number, not {type(value).__name__}")


# --------------------------------------------------------------------------------------------------
# Extraction


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_BARE = re.compile(r"\\boxed[ \t]+([^\s${}]+)")  # `\boxed 5`, a form some models write


def _match_brace(text: str, open_at: int) -> int | None:
    """Index of the `}` closing the `{` at `open_at`, skipping escaped braces; None if unclosed."""
    depth = 0
    i = open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # `\{`, `\}` and `\\` are not grouping braces
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


_BRACE_OR_ESCAPE = re.compile(r"\\[\s\S]|[{}]")  # `\{`, `\}` and `\\` are not grouping braces


def _last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}` (an unclosed, truncated one is skipped).

    One pass over the braces with a stack, so thousands of unclosed boxes cost linear time.
    """
    box_starts = {m.end() - 1: m.start() for m in _BOXED.finditer(text)}  # `{` index -> box start
    best: tuple[int, int, int] | None = None  # (box start, content start, content end)
    if box_starts:
        open_braces: list[int] = []
        for m in _BRACE_OR_ESCAPE.finditer(text):
            if m[0] == "{":
                open_braces.append(m.start())
            elif m[0] == "}" and open_braces:
                open_at = open_braces.pop()
                start = box_starts.get(open_at)
                if start is not None and (best is None or start > best[0]):
                    best = (start, open_at + 1, m.start())
    bares = list(_BOXED_BARE.finditer(text))
    bare = bares[-1] if bares else None
    if bare is not None and (best is None or bare.start() > best[0]):
        return bare.group(1).strip()
    return text[best[1] : best[2]].strip() if best is not None else None


_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(
    # a dash after "is"/":" is a separator only before a space: "is -5" keeps its sign
    r"(?:final\s+answer|\banswer)\s*(?:is\b|:)\s*(?::|[-\u2013\u2014]{1,2}(?=\s))?[ \t]*"
    rf"([^\n]{{0,{MAX_PHRASE_CHARS}}})",
    flags=re.IGNORECASE,
)
_NUMBER = re.compile(
    r"(?:(?<![\w)\]}.])-)?"  # a minus sign only where it cannot be subtraction (5-3)
    r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    r"(?:/\d+(?:\.\d+)?)?"
    r"(?![\w])"
)


def _tidy_phrase(raw: str) -> str:
    """The answer part of "the answer is ...": inline math if any, else the first sentence."""
    text = raw.replace("**", "").strip()
    math = re.search(r"(?<!\\)\$+((?:\\\$|[^$])+?)(?<!\\)\$+", text)
    if math is not None and (text.startswith("$") or not re.search(r"\d", text[: math.start()])):
        return math.group(1).strip()
    text = re.split(r"\.(?:\s|$)", text, maxsplit=1)[0].strip().rstrip(".,;:!").strip()
    if "\\" not in text:  # "clearly 12", "a total of 18 dollars" -> "12", "18 dollars"
        text = re.sub(r"^(?:(?!(?:not|no|never)\b)[A-Za-z]+,?\s+){1,6}(?=[-+$\d.])", "", text)
    if "=" in text:
        rhs = text.rsplit("=", 1)[1].strip()
        if parse_number(normalize_answer(rhs)) is not None:  # "5 + 3 = 8" -> "8"
            text = rhs
    return text


def _looks_like_answer(text: str) -> bool:
    """Accept a number (units allowed), LaTeX, or a short phrase (a name, "(C)", "x = 5"); not prose."""
    if not text:
        return False
    if parse_number(normalize_answer(text)) is not None or re.search(r"[\\^{}]", text):
        return True
    return len(text.split()) <= 3 and not re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", text)


def _last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def extract_answer_with_method(text: str | None) -> tuple[str | None, str | None]:
    """(answer, how) where how is "boxed", "####", "answer_is", "last_number", or None if nothing.

    A number is read as its decimal text (see the module docstring for accepted inputs).
    """
    text = as_answer_text(text, "output", allow_none=True)
    if not text or not text.strip():
        return None, None
    boxed = _last_boxed(text)
    if boxed is not None and boxed:
        return boxed, "boxed"
    hashes = [h.strip() for h in _HASHES.findall(text) if h.strip()]
    if hashes:
        return hashes[-1], "####"
    for m in reversed(list(_ANSWER_IS.finditer(text))[-MAX_ANSWER_PHRASES:]):
        phrase = _tidy_phrase(m.group(1))
        if _looks_like_answer(phrase):
            return phrase, "answer_is"
    number = _last_number(text)
    if number is not None:
        return number, "last_number"
    return None, None


def extract_answer(text: str | None) -> str | None:
    """The final answer in a model output: last `\\boxed{}`, else `####`, else "answer is", else last number."""
    return extract_answer_with_method(text)[0]


# --------------------------------------------------------------------------------------------------
# Normalisation and numbers

_TEXT_COMMANDS = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mbox|mathrm|hbox)\s*\{")
_UNIT_POWER = re.compile(r"\s*\^\s*(?:\{\s*[23]\s*\}|[23])")
_KNOWN_UNITS = (
    "mm|cm|km|m|in|ft|yd|mi|mg|kg|g|lb|lbs|oz|ml|mL|l|L|s|sec|min|h|hr|hrs|mph|kph|km/h|m/s"
)
_UNIT_TAIL = re.compile(
    r"^(?P<body>.*?[\d})\]])"
    r"(?P<tail>(?:\s+(?:[A-Za-z]+\.?(?:/[A-Za-z]+)?)(?:\s*\^\s*\{?[23]\}?)?)+"
    rf"|(?:{_KNOWN_UNITS})(?:\s*\^\s*\{{?[23]\}}?)?)\s*$"
)


def _replace_text_blocks(s: str) -> str:
    """Drop `\\text{...}` blocks that are units next to a number (`5\\text{ cm}^2`); else unwrap them."""
    spans: list[tuple[int, int, str]] = []
    pos = 0
    while (m := _TEXT_COMMANDS.search(s, pos)) is not None:
        close = _match_brace(s, m.end() - 1)
        if close is None:
            break
        end = close + 1
        power = _UNIT_POWER.match(s, end)
        spans.append((m.start(), end + (power.end() - end if power else 0), s[m.end() : close]))
        pos = end
    if not spans:
        return s
    outside = [s[: spans[0][0]], s[spans[-1][1] :]]
    outside += [s[end:start] for (_, end, _), (start, _, _) in zip(spans, spans[1:], strict=False)]
    drop = any(re.search(r"\d", part) for part in outside)
    out, last = [], 0
    for start, end, inner in spans:
        out.append(s[last:start])
        out.append(" " if drop else inner)
        last = end
    out.append(s[last:])
    return "".join(out)


def normalize_answer(answer: str) -> str:
    """Canonical answer string: no `$`, spacing commands, `\\left`/`\\right`, units, degrees, or end period."""
    s = answer.strip()
    s = s.replace("\u2212", "-").replace("\u00b0", "^\\circ")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    s = re.sub(r"\\displaystyle", "", s)
    s = re.sub(r",\\!\s*", ",", s)  # thousands separator in MATH: 10,\!080
    s = s.replace("{,}", ",")
    s = re.sub(r"\\\\|\\[!,;: ]", lambda m: m[0] if m[0] == "\\\\" else " ", s)  # spacing
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s)
    s = re.sub(r"\\(?:%|percent)", "%", s)
    s = _replace_text_blocks(s)
    s = re.sub(r"\s+", " ", s).strip()
    s = s.rstrip(".").strip()  # a sentence's period, never a decimal's (those end in digits)
    m = _UNIT_TAIL.match(s)
    if m is not None and not re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", m["body"])):
        s = m["body"].strip()
    return s.rstrip(".").strip()


_PLAIN = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+"
_PLAIN_RE = re.compile(rf"(?:{_PLAIN})")


def _frac_arg(name: str) -> str:
    """A `\\frac` argument: a braced plain number, or one bare digit (`\\frac12`)."""
    return rf"(?:\{{\s*(?P<{name}>{_PLAIN})\s*\}}|(?P<{name}1>\d))"


_LATEX_FRAC = re.compile(rf"(?P<sign>[+-]?)\\frac\s*{_frac_arg('num')}\s*{_frac_arg('den')}")
_SLASH_FRAC = re.compile(rf"(?P<num>{_PLAIN})\s*/\s*(?P<den>{_PLAIN})")
_SCIENTIFIC = re.compile(
    rf"(?P<mant>{_PLAIN})\s*(?:\\times|\\cdot|\*)\s*10\s*\^\s*\{{?(?P<exp>[+-]?\d{{1,3}})\}}?"
)


def _plain(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def parse_number(answer: str) -> tuple[Fraction, bool] | None:
    """(value, had_percent) when a normalised answer is one plain number, fraction or `a x 10^k`; else None."""
    s = answer.replace(" ", "") if "," not in answer else answer.strip()
    percent = s.endswith("%")
    if percent:
        s = s[:-1].strip()
    if not s:
        return None
    try:
        if _PLAIN_RE.fullmatch(s):
            return _plain(s), percent
        if (m := _LATEX_FRAC.fullmatch(s.replace(" ", ""))) is not None:
            num = _plain(m["num"] or m["num1"])
            den = _plain(m["den"] or m["den1"])
            value = num / den
            return (-value if m["sign"] == "-" else value), percent
        if (m := _SLASH_FRAC.fullmatch(s)) is not None:
            return _plain(m["num"]) / _plain(m["den"]), percent
        if (m := _SCIENTIFIC.fullmatch(s.replace(" ", ""))) is not None:
            return _plain(m["mant"]) * Fraction(10) ** int(m["exp"]), percent
    except (ValueError, ZeroDivisionError):  # zero denominators, over-long integers
        return None
    return None


def _close(a: Fraction, b: Fraction) -> bool:
    return a == b or abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def _numbers_equal(pred: tuple[Fraction, bool], gold: tuple[Fraction, bool]) -> bool:
    """Equal as written; if the gold is a percentage, its fraction form (25% ~ 0.25) also counts."""
    (p, _), (g, gold_percent) = pred, gold
    if _close(p, g):
        return True
    return gold_percent and _close(p, g / 100)


# --------------------------------------------------------------------------------------------------
# Symbolic equivalence in a worker process

# The worker is a short program run with `python -c`, so it needs no import path to this package.
_WORKER_SOURCE = r"""
import json, logging, sys
logging.disable(logging.CRITICAL)
proto, sys.stdout = sys.stdout, sys.stderr
try:
    import resource
    limit = int(sys.argv[1])
    if limit > 0:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (current + limit, current + limit))
except Exception:
    pass
from math_verify import parse, verify
proto.write('{"ready": true}\n'); proto.flush()
for line in sys.stdin:
    req = json.loads(line)
    try:
        gold = parse("$" + req["gold"] + "$", parsing_timeout=None)
        pred = parse("$" + req["pred"] + "$", parsing_timeout=None)
        ok = bool(gold) and bool(pred) and bool(verify(gold, pred, timeout_seconds=None))
        res = {"ok": ok, "error": None}
    except BaseException as e:
        res = {"ok": False, "error": type(e).__name__ + ": " + str(e)[:200]}
    proto.write(json.dumps(res) + "\n"); proto.flush()
"""

WORKER_MEMORY_LIMIT = 2 * 1024**3  # extra address space a worker may take beyond its start size
WORKER_START_TIMEOUT = 120.0


class _Timeout(Exception):
    pass


class _Worker:
    """One math-verify process; answers one request at a time, killed on timeout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_SOURCE, str(WORKER_MEMORY_LIMIT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self.replies: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=20)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        try:
            first = self._next(WORKER_START_TIMEOUT)
        except _Timeout:
            first = None
        if first is None or "ready" not in first:
            self.kill()
            tail = "".join(self.stderr_tail).strip()
            raise RuntimeError(
                "could not start the math-verify worker process"
                + (f":\n{tail}" if tail else "")
                + "\n(is math-verify installed in this interpreter? pip install math-verify)"
            )

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put(None)  # EOF: the worker died

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail.append(line)

    def _next(self, timeout: float | None) -> str | None:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty as e:
            raise _Timeout from e

    def ask(self, pred: str, gold: str, timeout: float | None) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"pred": pred, "gold": gold}) + "\n")
        self.proc.stdin.flush()
        reply = self._next(timeout)
        if reply is None:
            raise RuntimeError(
                "math-verify worker died: " + "".join(self.stderr_tail).strip()[-500:]
            )
        return json.loads(reply)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


_IDLE: list[_Worker] = []
_POOL_LOCK = threading.Lock()
_MAX_IDLE = 8
_CACHE: OrderedDict[tuple[str, str], bool] = OrderedDict()
_CACHE_SIZE = 20_000
_TIMEOUTS: deque[tuple[str, str]] = deque(maxlen=1000)


def _take_worker() -> _Worker:
    with _POOL_LOCK:
        while _IDLE:
            worker = _IDLE.pop()
            if worker.alive():
                return worker
    return _Worker()


def _return_worker(worker: _Worker) -> None:
    with _POOL_LOCK:
        if worker.alive() and len(_IDLE) < _MAX_IDLE:
            _IDLE.append(worker)
            return
    worker.kill()


def shutdown_workers() -> None:
    """Stop the idle math-verify worker processes (they are also stopped at interpreter exit)."""
    with _POOL_LOCK:
        workers = list(_IDLE)
        _IDLE.clear()
    for worker in workers:
        worker.kill()


atexit.register(shutdown_workers)


def _short(text: str, limit: int = 80) -> str:
    """`text` for a log line: its repr, cut in the middle when longer than `limit` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[: limit // 2]!r}...({len(text)} chars)...{text[-limit // 2 :]!r}"


def symbolic_timeouts() -> list[tuple[str, str]]:
    """(predicted, gold) pairs whose symbolic check timed out (most recent 1000), for reporting."""
    return list(_TIMEOUTS)


def _symbolic(pred: str, gold: str, timeout: float | None) -> tuple[bool, str]:
    """math-verify's verdict on normalised strings: (equal, "symbolic" | "timeout" | "error")."""
    key = (pred, gold)
    with _POOL_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key], "symbolic"
    if timeout is not None and timeout <= 0:  # the caller's time is spent: do not ask
        _TIMEOUTS.append((pred, gold))
        logger.warning("no time left for math-verify on %s vs gold %s", _short(pred), _short(gold))
        return False, "timeout"
    worker = _take_worker()
    try:
        reply = worker.ask(pred, gold, timeout)
    except _Timeout:
        worker.kill()
        _TIMEOUTS.append((pred, gold))
        logger.warning(
            "math-verify timed out after %.3gs on %s vs gold %s",
            timeout,
            _short(pred),
            _short(gold),
        )
        return False, "timeout"
    except (RuntimeError, OSError, ValueError) as e:
        worker.kill()
        logger.warning(
            "math-verify worker failed on %s vs gold %s: %s", _short(pred), _short(gold), e
        )
        return False, "error"
    _return_worker(worker)
    if reply.get("error"):
        logger.debug(
            "math-verify error on %s vs %s: %s", _short(pred), _short(gold), reply["error"]
        )
        return False, "error"
    ok = bool(reply["ok"])
    with _POOL_LOCK:
        _CACHE[key] = ok
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return ok, "symbolic"


# --------------------------------------------------------------------------------------------------
# Equivalence and grading


def _compare(predicted: str | None, gold: str, deadline: float | None) -> tuple[bool, str]:
    """(equal, method) with method in "string", "numeric", "symbolic", "timeout", "error", "no_answer".

    `deadline` (a `time.monotonic()` value, None: none) bounds the symbolic step: it gets what is left.
    """
    if predicted is None or not predicted.strip():
        return False, "no_answer"
    p, g = normalize_answer(predicted), normalize_answer(gold)
    if not p:
        return False, "no_answer"
    if p.replace(" ", "") == g.replace(" ", ""):
        return True, "string"
    p_num, g_num = parse_number(p), parse_number(g)
    if p_num is not None and g_num is not None:
        return _numbers_equal(p_num, g_num), "numeric"
    return _symbolic(p, g, None if deadline is None else deadline - time.monotonic())


def _deadline(timeout: float | None) -> float | None:
    """The `time.monotonic()` by which a call must end, or None for no limit."""
    if timeout is None:
        return None
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout != timeout:
        raise ValueError(f"timeout must be a number of seconds or None, not {timeout!r}")
    return time.monotonic() + timeout


def is_equivalent(
    predicted: str | int | float | None, gold: str | int | float, timeout: float | None = 5.0
) -> bool:
    """Whether an extracted answer equals the gold: numeric (rel. tol. 1e-6) or symbolic (math-verify).

    The symbolic check runs in a worker process and gives up after `timeout` seconds (None: wait),
    returning False and recording the pair in `symbolic_timeouts()`. Safe to call from any thread.
    Numbers are accepted for either side (see the module docstring).
    """
    deadline = _deadline(timeout)
    predicted = as_answer_text(predicted, "predicted answer", allow_none=True)
    return _compare(predicted, as_answer_text(gold, "gold"), deadline)[0]


@dataclass(frozen=True)
class Grade:
    """The verdict on one output: what was extracted, whether it is correct, and how each was decided."""

    extracted: str | None
    correct: bool
    method: str  # string | numeric | symbolic | timeout | error | no_answer
    extraction: str | None = None  # boxed | #### | answer_is | last_number | None


def grade(
    output_text: str | int | float | None, gold: str | int | float, timeout: float | None = 5.0
) -> Grade:
    """Extract the final answer from a model output and compare it with the gold answer.

    `timeout` bounds the whole call: extraction and normalisation take linear time, and the
    symbolic check gets what is left (none left: method "timeout", recorded in
    `symbolic_timeouts()`). Only the one-time start of the math-verify worker process (a few
    seconds, at most `WORKER_START_TIMEOUT`) is not counted, so the first check of a run is not
    failed for it. An int or finite float output or gold is graded as that number; bytes, bool,
    NaN, infinity or a None gold raise `TypeError`/`ValueError` naming the argument.
    """
    deadline = _deadline(timeout)
    gold_text = as_answer_text(gold, "gold")
    extracted, how = extract_answer_with_method(output_text)
    correct, method = _compare(extracted, gold_text, deadline)
    return Grade(extracted=extracted, correct=correct, method=method, extraction=how)
