"""Hostile adapters cannot produce a false green (issue 17): ``febm-ref check`` runs the
adapter in a worker process (febm_ref/conformance/worker.py).

Each test writes a small adapter into ``tmp_path`` and asserts the exact row statuses,
message fragments and the exit status. The correct functions of these adapters are written
from the documented definitions (pure NumPy, not febm_ref), so a "pass" row is an
independent check that the isolated path hands the right arrays to the comparison:
``divergence_map`` for KL only (``g_data(s) = f'(e^s) = s + 1``,
``g_model(s) = e^s f'(e^s) - f(e^s) = e^s``, ``g_data'(s) = e^s f''(e^s) = 1``,
``g_model'(s) = e^{2s} f''(e^s) = e^s``, D7; other divergences raise
NotImplementedError) and the MLP energy from the documented flat layout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from febm_ref import cli
from febm_ref.conformance.adapter import PROTOCOL
from febm_ref.conformance.checker import check_adapter, format_table, run_check
from febm_ref.conformance.golden import write_golden

ROOT = Path(__file__).resolve().parents[1]

# KL (f(u) = u log u): every D7 map and f, f', f'', f* in closed form (docs/conformance.md)
GOOD = '''
import numpy as np

def _kl(quantity, x):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        return {"f": lambda: x * np.log(x), "f_prime": lambda: np.log(x) + 1.0,
                "f_double_prime": lambda: 1.0 / x, "conjugate": lambda: np.exp(x - 1.0),
                "g_data": lambda: x + 1.0, "g_model": lambda: np.exp(x),
                "g_data_prime": lambda: np.ones_like(x), "g_model_prime": lambda: np.exp(x)}[quantity]()

def divergence_map(name, params, quantity, x):
    if name != "kl":
        raise NotImplementedError(name)
    return _kl(quantity, x)

def _energy(params, sizes, activation, x):
    acts = {"tanh": np.tanh, "softplus": lambda z: np.logaddexp(z, 0.0),
            "silu": lambda z: z / (1.0 + np.exp(-z)), "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0)))}
    a, offset = x, 0
    for layer in range(len(sizes) - 1):
        n_in, n_out = sizes[layer], sizes[layer + 1]
        W = params[offset:offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        a = a @ W + params[offset:offset + n_out]
        offset += n_out
        if layer < len(sizes) - 2:
            a = acts[activation](a)
    return a[:, 0]
'''


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Path:
    """catalogue + mlp sections only (0.3 s to build; the full set takes ~15 s)."""
    out = tmp_path_factory.mktemp("golden_small")
    write_golden(out, seed=0, sections=["catalogue", "mlp"])
    return out


def _adapter(tmp_path: Path, body: str, name: str = "hostile.py") -> Path:
    path = tmp_path / name
    path.write_text(GOOD + textwrap.dedent(body))
    return path


def _rows(report):
    return {f"{row.section}.{row.quantity}": row for row in report.rows}


def _line_of(path: Path, fragment: str) -> int:
    (line,) = [i for i, text in enumerate(path.read_text().splitlines(), 1) if fragment in text]
    return line


def _json_rows(report: dict) -> dict:
    return {f"{r['section']}.{r['quantity']}": r for r in report["rows"]}


# ----------------------------------------------------------------------------- the good part passes

def test_the_independent_kl_and_mlp_functions_pass_isolated(golden, tmp_path):
    """Control for every test below: the same functions without hostile code pass, so a
    row that is ERROR there is the hostile code's doing."""
    path = _adapter(tmp_path, "mlp_energy = _energy\n")
    rows = _rows(run_check(str(path), golden))
    assert {k for k, r in rows.items() if r.status == "pass"} == {
        f"catalogue.{q}" for q in ("f", "f_prime", "f_double_prime", "conjugate", "g_data", "g_model",
                                   "g_data_prime", "g_model_prime")} | {"mlp.energy"}
    assert rows["mlp.energy"].n_checked == 4 and rows["catalogue.g_model"].n_checked == 1
    assert rows["mlp.grad_x"].status == "skipped"


# ----------------------------------------------------------------------------- worker death

@pytest.mark.parametrize("kill, death", [
    ("os._exit(0)", "worker exited with status 0 while evaluating mlp_energy"),
    ("os.kill(os.getpid(), signal.SIGKILL)", "worker died with SIGKILL while evaluating mlp_energy"),
    ("os.closerange(3, 4096)", "worker exited with status 1 while evaluating mlp_energy"),  # loses its result pipe
])
def test_a_dying_worker_is_an_error_row_and_the_rest_continue(golden, tmp_path, capsys, kill, death):
    path = _adapter(tmp_path, f"""
        import os, signal
        def mlp_energy(params, sizes, activation, x):
            if activation == "tanh":
                {kill}
            return _energy(params, sizes, activation, x)
    """)
    assert cli.main(["check", "--adapter", str(path), "--golden", str(golden), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    rows = _json_rows(report)
    energy = rows["mlp.energy"]
    assert energy["status"] == "ERROR" and energy["message"].startswith(f"tanh/energy: {death}")
    assert energy["n_checked"] == 3, "softplus, silu, elu evaluated in a fresh worker"
    assert rows["catalogue.g_data"]["status"] == "pass" and report["counts"]["pass"] == 8
    assert report["verdict"] == "FAILED" and not report["passed"]
    assert len(report["worker_events"]) == 1 and "fresh worker" in report["worker_events"][0]


def test_a_segfault_in_the_third_function_keeps_the_other_rows(golden, tmp_path):
    path = _adapter(tmp_path, """
        import ctypes
        mlp_energy = _energy
        def mlp_grad_params(params, sizes, activation, x):
            return np.zeros((x.shape[0], params.shape[0]))
        def mlp_grad_x(params, sizes, activation, x):
            return ctypes.string_at(0)  # SIGSEGV
    """)
    report = run_check(str(path), golden)
    rows = _rows(report)
    line = _line_of(path, "ctypes.string_at(0)")
    grad_x = rows["mlp.grad_x"]
    assert grad_x.status == "ERROR"
    assert grad_x.message.startswith(f"tanh/grad_x: worker died with SIGSEGV while evaluating mlp_grad_x "
                                     f"(at hostile.py:{line} in mlp_grad_x)"), grad_x.message
    assert grad_x.message.endswith("(+3 more case(s) with errors)")
    assert rows["mlp.energy"].status == "pass" and rows["mlp.energy"].n_checked == 4
    # evaluated after the crashes: all zeros instead of the gradients, so FAIL (not ERROR)
    assert rows["mlp.grad_params"].status == "FAIL" and rows["mlp.grad_params"].n_checked == 4
    assert len(report.events) == 3  # then mlp_grad_x is not called again (MAX_DEATHS_PER_FUNCTION)
    assert "Segmentation fault" in report.adapter_output  # faulthandler's traceback, kept
    assert "FAILED: 9 pass, 1 FAIL, 1 ERROR" in format_table(report)


def test_a_crash_while_importing_is_one_load_error_row(golden, tmp_path):
    path = tmp_path / "crash_on_import.py"
    path.write_text("import ctypes\nctypes.string_at(0)\n")
    report = run_check(str(path), golden)
    (row,) = report.rows
    assert (row.section, row.status) == ("adapter", "ERROR")
    assert row.message == ("the worker died with SIGSEGV while importing the adapter "
                           "(at crash_on_import.py:2 in <module>)")
    assert not report.passed


# ----------------------------------------------------------------------------- timeout

def test_a_sleeping_function_times_out_and_its_worker_is_killed(golden, tmp_path, capsys):
    pid_file = tmp_path / "pid"
    path = _adapter(tmp_path, f"""
        import os, time
        def mlp_energy(params, sizes, activation, x):
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(600)
        def mlp_grad_x(params, sizes, activation, x):
            return np.zeros_like(x)
    """)
    assert cli.main(["check", "--adapter", str(path), "--golden", str(golden), "--timeout", "1.5"]) == 1
    out = capsys.readouterr().out
    report = run_check(str(path), golden, timeout=1.5)
    rows = _rows(report)
    energy = rows["mlp.energy"]
    assert energy.status == "ERROR" and energy.n_checked == 0
    assert energy.message.startswith("tanh/energy: timed out after 1.5 s in mlp_energy (the worker was killed")
    assert energy.message.endswith("(+3 more case(s) with errors)")  # "not run: mlp_energy timed out earlier"
    assert rows["mlp.grad_x"].status == "FAIL" and rows["mlp.grad_x"].n_checked == 4  # continued
    assert rows["catalogue.g_data"].status == "pass"
    assert "timed out after 1.5 s in mlp_energy" in out and "FAILED: 8 pass, 1 FAIL, 1 ERROR" in out
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left sleeping
        os.kill(int(pid_file.read_text()), 0)


# ----------------------------------------------------------------------------- raw output

def test_raw_fd_writes_never_reach_the_json_report(golden, tmp_path):
    path = _adapter(tmp_path, """
        import ctypes, os, sys
        os.write(1, b"{not json at import")
        mlp_energy = _energy
        def divergence_map(name, params, quantity, x, _map=divergence_map):
            os.write(1, b"]]raw fd 1 junk")
            os.write(2, b"raw fd 2 junk\\n")
            ctypes.CDLL(None).printf(b"C-level printf junk\\n")
            print("python print junk")
            return _map(name, params, quantity, x)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "febm_ref.cli", "check", "--adapter", str(path), "--golden",
                           str(golden), "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # parses: nothing of the adapter's output is in it
    assert report["verdict"] == "PASSED" and report["counts"]["pass"] == 9
    for junk in ("{not json at import", "]]raw fd 1 junk", "raw fd 2 junk", "C-level printf junk",
                 "python print junk"):
        assert junk in report["adapter_output"] and junk in done.stderr, junk
    rest = {key: value for key, value in report.items() if key != "adapter_output"}
    assert "junk" not in json.dumps(rest) and "{not json" not in json.dumps(rest)


# ----------------------------------------------------------------------------- non-numeric results

BAD_RESULTS = [
    ("'0.5'", "mlp_energy returned a str ('0.5'), not convertible to a float64 array"),
    ("[str(v) for v in np.zeros(x.shape[0])]", "mlp_energy returned a list of dtype <U3"),
    ("np.zeros(x.shape[0], dtype=complex)", "mlp_energy returned a complex ndarray (dtype complex128)"),
    ("_energy(params, sizes, activation, x) + 0j", "even when the imaginary part is zero"),
    ("None", "mlp_energy returned None"),
    ("np.array([None] * x.shape[0])", "mlp_energy returned a ndarray of dtype object"),
    ("np.zeros(x.shape[0], dtype=bool)", "mlp_energy returned booleans (ndarray, dtype bool)"),
    ("{'energy': 1.0}", "mlp_energy returned a dict"),
    ("b'1.0'", "mlp_energy returned a bytes"),
]


@pytest.mark.parametrize("value, fragment", BAD_RESULTS)
def test_non_numeric_results_are_errors_naming_function_case_and_type(golden, value, fragment):
    namespace: dict = {}
    exec(GOOD + f"def mlp_energy(params, sizes, activation, x):\n    return {value}\n", namespace)  # noqa: S102
    adapter = type("A", (), {"mlp_energy": staticmethod(namespace["mlp_energy"])})()
    row = _rows(check_adapter(adapter, golden))["mlp.energy"]
    assert row.status == "ERROR", (value, row.status, row.message)
    assert row.message.startswith("tanh/energy: ") and fragment in row.message, row.message


def test_integer_results_are_accepted_and_judged(golden):
    """Integer dtypes are real numbers: converted exactly and compared (here: wrong, FAIL)."""
    adapter = type("A", (), {"mlp_energy": staticmethod(lambda p, s, a, x: np.zeros(x.shape[0], dtype=np.int64))})()
    row = _rows(check_adapter(adapter, golden))["mlp.energy"]
    assert row.status == "FAIL" and row.n_checked == 4 and "got 0.0" in row.message


def test_non_numeric_results_are_errors_in_the_isolated_path_too(golden, tmp_path):
    path = _adapter(tmp_path, """
        def mlp_energy(params, sizes, activation, x):
            return {"tanh": None, "softplus": "0.5", "silu": np.zeros(x.shape[0], dtype=complex)}.get(
                activation, _energy(params, sizes, activation, x))
    """)
    row = _rows(run_check(str(path), golden))["mlp.energy"]
    assert row.status == "ERROR" and row.n_checked == 1  # elu is right
    assert row.message == ("tanh/energy: mlp_energy returned None, not convertible to a float64 array (a "
                           "missing return statement?); return a real numeric array (+2 more case(s) with errors)")


# ----------------------------------------------------------------------------- verdicts

def test_not_implemented_everywhere_is_nothing_checked_not_passed(golden, tmp_path, capsys):
    body = "".join(f"def {name}(*args):\n    raise NotImplementedError\n" for name in PROTOCOL)
    path = tmp_path / "lazy.py"
    path.write_text(body)
    assert cli.main(["check", "--adapter", str(path), "--golden", str(golden)]) == 1
    out = capsys.readouterr().out
    assert "NOTHING CHECKED: 0 pass, 0 FAIL, 0 ERROR, 11 skipped" in out and "PASSED" not in out
    assert "this is not a pass" in out
    assert cli.main(["check", "--adapter", str(path), "--golden", str(golden), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "NOTHING CHECKED" and report["passed"] is False
    assert all(r["message"] == "NotImplementedError for every case" for r in report["rows"])


def test_strict_mode_prints_failed_not_passed(golden, tmp_path, capsys):
    path = _adapter(tmp_path, "mlp_energy = _energy\n", name="partial.py")
    assert cli.main(["check", "--adapter", str(path), "--golden", str(golden)]) == 0
    assert "PASSED: 9 pass, 0 FAIL, 0 ERROR, 2 skipped" in capsys.readouterr().out
    assert cli.main(["check", "--adapter", str(path), "--golden", str(golden), "--strict"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 9 pass, 0 FAIL, 0 ERROR, 2 skipped" in out and "PASSED" not in out
    assert "--strict: the 2 skipped row(s) count as failures" in out
    assert cli.main(["check", "--adapter", str(path), "--golden", str(golden), "--strict", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["verdict"], report["passed"], report["strict"]) == ("FAILED", False, True)


# ----------------------------------------------------------------------------- error location

def test_an_error_inside_numpy_is_located_at_the_adapter_frame(golden, tmp_path):
    path = _adapter(tmp_path, """
        def mlp_energy(params, sizes, activation, x):
            hessian = np.ones((x.shape[0], x.shape[1]))
            return np.linalg.inv(hessian)[:, 0]  # not square: LinAlgError inside numpy.linalg
        def mlp_grad_x(params, sizes, activation, x):
            return np.reshape(x, (7, -1))  # ValueError inside numpy/_core/fromnumeric.py
    """, name="my_adapter.py")
    inv_line, reshape_line = _line_of(path, "np.linalg.inv"), _line_of(path, "np.reshape")
    for report in (run_check(str(path), golden), run_check(str(path), golden, isolated=False)):
        rows = _rows(report)
        energy, grad_x = rows["mlp.energy"], rows["mlp.grad_x"]
        assert energy.status == grad_x.status == "ERROR"
        assert energy.message.startswith("tanh/energy: LinAlgError: ")
        assert f"(at my_adapter.py:{inv_line} in mlp_energy; raised inside numpy)" in energy.message, energy.message
        assert f"(at my_adapter.py:{reshape_line} in mlp_grad_x; raised inside numpy)" in grad_x.message, grad_x.message


# ----------------------------------------------------------------------------- --list-protocol

def test_list_protocol_prints_every_protocol_function(capsys):
    assert cli.main(["check", "--list-protocol"]) == 0
    out = capsys.readouterr().out
    for spec in PROTOCOL.values():
        assert spec.signature() in out and spec.summary in out, spec.name
        assert len(spec.inputs) == len(spec.args) and all(spec.inputs), spec.name
    assert f"{len(PROTOCOL)} functions" in out
    assert cli.main(["check", "--list-protocol", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["protocol"]
    assert [entry["name"] for entry in listed] == list(PROTOCOL)
    for entry in listed:
        spec = PROTOCOL[entry["name"]]
        assert [a["name"] for a in entry["args"]] == list(spec.args) and entry["returns"] == spec.returns
    assert cli.main(["check"]) == 2  # neither --adapter nor --list-protocol
    assert "--adapter MODULE[:OBJECT] is required" in capsys.readouterr().err
    from febm_ref.commands import check
    from febm_ref.conformance import checker

    assert check.DEFAULT_TIMEOUT == checker.DEFAULT_TIMEOUT  # the CLI's copy (kept for a fast --help)


# ----------------------------------------------------------------------------- febm_ref.testing

def test_assert_conforms_isolated_switch(golden, tmp_path):
    from febm_ref.conformance.adapter import load_adapter
    from febm_ref.testing import assert_conforms

    good = load_adapter(str(_adapter(tmp_path, "mlp_energy = _energy\n", name="good_module.py")))
    assert_conforms(good, quantities=["mlp.energy", "catalogue"], golden=golden, isolated=True)
    exiting = _adapter(tmp_path, """
        import os
        def mlp_energy(params, sizes, activation, x):
            os._exit(0)
    """, name="exiting.py")
    with pytest.raises(AssertionError) as info:
        assert_conforms(str(exiting), quantities=["mlp.energy"], golden=golden, isolated=True)
    assert "mlp.energy: ERROR" in str(info.value) and "worker exited with status 0" in str(info.value)
    with pytest.raises(TypeError, match="isolated=True needs the adapter as a 'MODULE"):
        assert_conforms(type("A", (), {})(), golden=golden, isolated=True)


def _dead(pid: int) -> bool:
    """No such process, or a zombie (killed, not yet reaped by its new parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_grandchild_holding_the_result_pipe_cannot_hide_a_death(golden, tmp_path):
    """The worker forks a sleeping child (which inherits the result pipe) and exits: the
    death is seen when the worker ends, not after the timeout, and the child is killed."""
    pid_file = tmp_path / "child"
    path = _adapter(tmp_path, f"""
        import os, time
        def mlp_energy(params, sizes, activation, x):
            if activation == "tanh":
                child = os.fork()
                if child == 0:
                    time.sleep(600)
                    os._exit(0)
                open({str(pid_file)!r}, "w").write(str(child))
                os._exit(3)
            return _energy(params, sizes, activation, x)
    """)
    rows = _rows(run_check(str(path), golden, timeout=600))
    assert rows["mlp.energy"].message.startswith("tanh/energy: worker exited with status 3 while evaluating mlp_energy")
    assert rows["mlp.energy"].n_checked == 3
    assert _dead(int(pid_file.read_text())), "the worker's process group is killed"


def test_auto_precision_in_the_isolated_path(golden, tmp_path):
    """--precision auto reads the dtype in the worker: float32 results give float32 rows."""
    path = _adapter(tmp_path, "def mlp_energy(*args):\n    return _energy(*args).astype(np.float32)\n")
    report = run_check(str(path), golden, precision="auto")
    assert report.precision == "float32"
    assert _rows(report)["mlp.energy"].precision == "float32"


def test_system_exit_and_keyboard_interrupt_in_a_function_are_ordinary_errors(golden, tmp_path):
    """``sys.exit()`` / ``raise KeyboardInterrupt`` inside a function is an ERROR for that case
    (as in-process, test_conformance.py), without losing the worker."""
    path = _adapter(tmp_path, """
        import sys
        def mlp_energy(params, sizes, activation, x):
            if activation == "tanh":
                sys.exit(3)
            if activation == "silu":
                raise KeyboardInterrupt
            return _energy(params, sizes, activation, x)
    """)
    exit_line = _line_of(path, "sys.exit(3)")
    report = run_check(str(path), golden)
    energy = _rows(report)["mlp.energy"]
    assert energy.status == "ERROR" and energy.n_checked == 2
    assert energy.message == (f"tanh/energy: SystemExit: 3 (at hostile.py:{exit_line} in mlp_energy) "
                              "(+1 more case(s) with errors)")
    assert report.events == [], "no worker was lost"
