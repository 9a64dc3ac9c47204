"""MetaSchedule tuning of the kernels (``--tune``) and reading back what it found (``--tuning-db``).

Each distinct kernel (PrimFunc) is one MetaSchedule task.  Candidates are
built in worker processes and timed on this machine, or on the devices
behind a TVM RPC tracker (``--rpc-tracker HOST:PORT --rpc-key KEY``).  The
database is MetaSchedule's JSON database in a directory; a kernel whose
workload is already there is not tuned again, and every build given the
directory (with or without ``--tune``) uses its best records in place of the
default schedule.  The time budget is enforced by the task scheduler, which
starts no new round of candidates once it is spent (MetaSchedule's own
budget counts trials); a round started before the deadline finishes, and
every kernel gets its first round of candidates however small the budget.

Traps of apache-tvm 0.27 handled here: MetaSchedule crashes (segfault) with
apache-tvm-ffi newer than 0.1.14.post0, so tuning refuses to start with
another version; the stock LocalBuilder imports ``tvm.s_tir.tensor_intrin``
in every worker (about 14 s, past the build timeout), so candidates are
built by a function that does not.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import tvm
import tvm_ffi

from ir.errors import BackendError

from .devices import Device, gpu_present

# The apache-tvm-ffi version MetaSchedule runs with (setup.py pins it too).
SUPPORTED_FFI = "0.1.14.post0"
TRIALS_PER_ROUND = 8           # candidates built and timed per task and round (the budget is checked between)
BUILD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TuningOptions:
    """What ``build --tune/--tuning-db/--rpc-tracker/--rpc-key`` asked for."""

    database: Path
    tune: bool = False
    budget_s: float = 60.0
    rpc_tracker: str = ""  # HOST:PORT
    rpc_key: str = ""


@dataclass
class TuningReport:
    tasks: int = 0          # kernels tuned this build
    trials: int = 0         # candidates measured (successfully or not)
    failed: int = 0         # candidates that did not build or run
    seconds: float = 0.0
    stopped_by_budget: bool = False
    search: str = ""


def check_options(options: TuningOptions, dev: Device) -> None:
    """Refuse what cannot work before any kernel is lowered."""
    if options.rpc_key and not options.rpc_tracker or options.rpc_tracker and not options.rpc_key:
        raise BackendError("--rpc-tracker and --rpc-key go together", subject="--rpc-tracker/--rpc-key",
                           hint="the tracker hands out devices registered under a key: give both")
    if options.rpc_tracker and not options.tune:
        raise BackendError("an RPC tracker is only used to measure candidates", subject="--rpc-tracker",
                           hint="add --tune")
    if not options.tune:
        return
    if options.budget_s <= 0:
        raise BackendError("the tuning budget must be positive", subject=f"--tune-budget {options.budget_s}")
    if tvm_ffi.__version__ != SUPPORTED_FFI:
        raise BackendError(f"MetaSchedule in apache-tvm {tvm.__version__} crashes with apache-tvm-ffi "
                           f"{tvm_ffi.__version__}", subject="--tune", expected=f"apache-tvm-ffi=={SUPPORTED_FFI}",
                           hint=f"pip install apache-tvm-ffi=={SUPPORTED_FFI} (setup.py pins it)")
    try:
        import psutil  # noqa: F401 - MetaSchedule asks it for the core count
    except ImportError:
        raise BackendError("MetaSchedule needs psutil", subject="--tune", hint="pip install psutil") from None
    if options.rpc_tracker:  # before the model is lowered, not after
        _check_tracker(*tracker_address(options.rpc_tracker), options.rpc_key)
    if dev.gpu and not options.rpc_tracker and not gpu_present():
        raise BackendError(f"tuning {dev.name} kernels times them on a {dev.name} device, and none is here",
                           subject=f"--tune --option device={dev.name}",
                           hint="measure on remote GPUs with --rpc-tracker HOST:PORT --rpc-key KEY, "
                                "tune with --option device=llvm, or build without --tune (DLight's rules)")


def tracker_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise BackendError("bad RPC tracker address", subject=f"--rpc-tracker {text}", expected="HOST:PORT")
    return host, int(port)


def open_database(path: Path) -> Any:
    from tvm.s_tir import meta_schedule as ms
    try:
        path.mkdir(parents=True, exist_ok=True)
        return ms.database.JSONDatabase(work_dir=str(path))
    except Exception as exc:  # noqa: BLE001 - a file TVM cannot parse, a directory we cannot write
        raise BackendError(f"cannot open the tuning database: {str(exc).splitlines()[-1][:200]}",
                           subject=str(path), hint="give --tuning-db a directory (MetaSchedule's JSON database)")


def task_module(func: Any) -> tvm.IRModule:
    """How a kernel is keyed in the database: one function named main (as MetaSchedule tunes it)."""
    return tvm.IRModule({"main": func.with_attr("global_symbol", "main").with_attr("tirx.noalias", True)})


def tuned_function(db: Any, func: Any, target: Any) -> Optional[Any]:
    """``func`` under the best schedule ``db`` holds for it on ``target``; None without a record."""
    mod = task_module(func)
    if not db.has_workload(mod):
        return None
    sch = db.query_schedule(mod, target, workload_name="main")
    return None if sch is None else sch.mod["main"]


def _register_tensor_intrinsics(dev: Device) -> None:
    """Register the tensor intrinsics of ``dev``'s kind only.

    A TuneContext imports ``tvm.s_tir.tensor_intrin``, whose package import
    registers every architecture's intrinsics (x86, CUDA, ARM, RISC-V,
    Hexagon...: 15 s to over a minute on a busy 2-core machine).  The
    package is entered in ``sys.modules`` without running its ``__init__``
    (its submodules stay importable), and only the module of this device's
    intrinsics is imported: x86 (VNNI, AMX) for the host, cuda for GPUs.
    """
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    import importlib
    import platform
    import types

    import tvm.s_tir
    package = types.ModuleType(name)
    package.__path__ = [os.path.join(os.path.dirname(tvm.s_tir.__file__), "tensor_intrin")]
    package.__package__ = name
    sys.modules[name] = package
    if dev.kind == "llvm":
        machine = platform.machine().lower()
        wanted = "x86" if machine in ("x86_64", "amd64") else "arm_cpu" if machine in ("aarch64", "arm64") else ""
    else:
        wanted = {"cuda": "cuda", "rocm": "rocm", "metal": "metal"}.get(dev.kind, "")
    if wanted:
        setattr(package, wanted, importlib.import_module(f"{name}.{wanted}"))


def _candidate_builder() -> Any:
    """A MetaSchedule builder whose workers build without importing ``tvm.s_tir.tensor_intrin``.

    The build function is defined inside this one so cloudpickle ships it by
    value: the worker needs only tvm, not this package.
    """
    from tvm.s_tir import meta_schedule as ms

    def build(mod: Any, target: Any, _params: Any) -> Any:
        from tvm.driver import build as tvm_build
        from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
        mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
        return tvm_build(mod, target=target)

    return ms.builder.LocalBuilder(f_build=build, timeout_sec=BUILD_TIMEOUT_S,
                                   max_workers=max(1, (os.cpu_count() or 1)))


def _runner(options: TuningOptions) -> Any:
    from tvm.s_tir import meta_schedule as ms
    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=0, enable_cpu_cache_flush=False)
    if not options.rpc_tracker:
        return ms.runner.LocalRunner(evaluator_config=evaluator, timeout_sec=BUILD_TIMEOUT_S)
    host, port = tracker_address(options.rpc_tracker)
    rpc = ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=options.rpc_key,
                              session_timeout_sec=int(BUILD_TIMEOUT_S))
    return ms.runner.RPCRunner(rpc_config=rpc, evaluator_config=evaluator)


def _check_tracker(host: str, port: int, key: str) -> None:
    """A clear error when the tracker is unreachable or has no device under ``key``."""
    import socket

    from tvm import rpc
    try:  # TVM's own client retries for a minute; a refused connection is known at once
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        raise BackendError(f"cannot reach the RPC tracker: {exc}", subject=f"--rpc-tracker {host}:{port}",
                           hint="start one with python -m tvm.exec.rpc_tracker --port PORT") from None
    try:
        summary = rpc.connect_tracker(host, port).summary()
    except Exception as exc:  # noqa: BLE001 - socket and TVM errors
        raise BackendError(f"cannot reach the RPC tracker: {str(exc).splitlines()[-1][:200]}",
                           subject=f"--rpc-tracker {host}:{port}") from None
    keys = {q.split(":")[0] for q in summary.get("queue_info", {})}
    free = {s.get("key", "").split(":")[1] if ":" in s.get("key", "") else s.get("key", "")
            for s in summary.get("server_info", [])}
    if key not in keys | free:
        raise BackendError("the RPC tracker has no device registered under this key", subject=f"--rpc-key {key}",
                           found=", ".join(sorted(k for k in keys | free if k)) or "no devices",
                           hint="start a server with python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY")


def _search(dev: Device) -> tuple[Any, Any, str]:
    """(strategy, cost model, description): MetaSchedule's evolutionary search guided by its XGBoost
    cost model when xgboost is installed, else random sampling of the design space."""
    from tvm.s_tir import meta_schedule as ms
    try:
        import xgboost  # noqa: F401
    except ImportError:
        return "replay-trace", "random", "random sampling of the design space (install xgboost for " \
                                         "MetaSchedule's cost-model-guided evolutionary search)"
    strategy = ms.search_strategy.EvolutionarySearch(population_size=128, init_min_unmeasured=16,
                                                     genetic_num_iters=2)
    return strategy, "xgb", "evolutionary search with MetaSchedule's XGBoost cost model"


def _progress_callback(t0: float, budget: float, report: TuningReport, bar: Any) -> Any:
    """A measure callback: counts trials and moves the progress bar."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class Progress(PyMeasureCallback):
        def apply(self, task_scheduler: Any, task_id: int, measure_candidates: Any, builder_results: Any,
                  runner_results: Any) -> None:
            report.trials += len(runner_results)
            report.failed += sum(1 for b, r in zip(builder_results, runner_results)
                                 if b.error_msg is not None or r.error_msg is not None)
            bar.n = round(min(budget, time.perf_counter() - t0), 1)
            bar.set_postfix(trials=report.trials, failed=report.failed, refresh=False)
            bar.refresh()

    return Progress()


def _budget_scheduler(deadline: float, report: TuningReport) -> Any:
    """MetaSchedule's round-robin task scheduler that hands out no new round once ``deadline`` passed.

    (Terminating tasks from a measure callback instead trips a check in
    TVM's scheduler when the callback runs inside its task selection.)
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler

    @derived_object
    class BudgetRoundRobin(PyTaskScheduler):
        def __init__(self) -> None:
            super().__init__()
            self.last = -1
            self.started: set[int] = set()  # every task gets one round, even past the deadline

        def next_task_id(self) -> int:
            scheduler = self._outer()
            tasks = scheduler.tasks_
            for i in range(len(tasks)):
                scheduler.touch_task(i)
            late = time.perf_counter() >= deadline
            for _ in range(len(tasks)):
                self.last = (self.last + 1) % len(tasks)
                task = tasks[self.last]
                if task.is_terminated or late and self.last in self.started:
                    continue
                if task.runner_futures is not None:
                    self.join_running_task(self.last)
                if not tasks[self.last].is_terminated:
                    self.started.add(self.last)
                    return self.last
            report.stopped_by_budget = late and any(not t.is_terminated for t in tasks)
            return -1

    return BudgetRoundRobin()


def tune(functions: dict[str, Any], target: Any, dev: Device, options: TuningOptions, db: Any) -> TuningReport:
    """Tune every function of ``functions`` that ``db`` has no workload for, within the budget."""
    from tqdm import tqdm
    from tvm.s_tir import meta_schedule as ms

    todo = {sym: f for sym, f in functions.items() if tuned_function(db, f, target) is None}
    report = TuningReport()
    if not todo:
        return report
    strategy, cost_model, report.search = _search(dev)
    t0 = time.perf_counter()
    deadline = t0 + options.budget_s
    where = f"through the RPC tracker {options.rpc_tracker} (key {options.rpc_key})" if options.rpc_tracker \
        else "on this machine"
    print(f"tuning {len(todo)} kernel(s) for {dev.name} {where}, {options.budget_s:g} s: {report.search}",
          file=sys.stderr)
    cores = os.cpu_count() or 1
    work = str(options.database)  # MetaSchedule writes its per-task logs to logs/ beside the database
    _register_tensor_intrinsics(dev)
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)  # the console; the logs get all
    with tqdm(total=options.budget_s, desc="tuning", unit="s", disable=None,
                 bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s{postfix}") as bar:
        tasks = [ms.TuneContext(mod=task_module(f), target=target, space_generator="post-order-apply",
                                search_strategy=strategy, task_name=sym, num_threads=cores,
                                logger=logger).clone()
                 for (sym, f), logger in zip(todo.items(), ms.logging.get_loggers_from_work_dir(work, list(todo)))]
        callbacks = list(ms.MeasureCallback.create("default")) + [_progress_callback(t0, options.budget_s,
                                                                                    report, bar)]
        try:
            ms.tune_tasks(tasks=tasks, task_weights=[1.0] * len(tasks), work_dir=work,
                          max_trials_global=100_000, num_trials_per_iter=TRIALS_PER_ROUND,
                          builder=_candidate_builder(), runner=_runner(options), database=db,
                          cost_model=cost_model, measure_callbacks=callbacks,
                          task_scheduler=_budget_scheduler(deadline, report))
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - TVM raises its own error types
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            raise BackendError(f"MetaSchedule failed: {(lines[-1] if lines else type(exc).__name__)[:300]}",
                               subject="--tune") from None
    report.tasks = len(todo)
    report.seconds = time.perf_counter() - t0
    if report.trials and report.failed == report.trials:
        raise BackendError("every tuning candidate failed to build or run", subject="--tune",
                           found=f"{report.failed} of {report.trials} candidates",
                           hint="MetaSchedule's logs say why; check the device behind the tracker")
    return report
