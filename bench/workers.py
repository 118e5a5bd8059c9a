"""One webhook worker against two behind one reverse proxy, on one PostgreSQL database: steps per second,
step latency, and the CPU each process takes per step (every worker, the proxy, the fake Bot API, the
driver and the database's backends), with the tips counted in the database against the ones sent. Not a
test: run it by hand, on an otherwise quiet machine if there is one.

    .venv/bin/python bench/workers.py [--seconds 20] [--rounds 3] [--citizens 50,200] [--workers 1,2]
                                      [--database postgresql://postgres@127.0.0.1:5432/tinbao_workers]

The database is DROPPED and made again at the start (its name must begin with tinbao_). Processes, each
its own, so that /proc tells their CPU apart:
- two `tinbao run` webhook workers on 127.0.0.1, one config each (only the listening port differs), one
  keyring, one data folder, one PostgreSQL database, as compose.yaml runs them;
- a round-robin reverse proxy (aiohttp, this file with --serve-proxy; nginx in a real deployment): each
  webhook POST goes to the next worker in turn, as nginx's upstream does. A "1 worker" run sends every
  update to worker 1 (worker 2 stays up, idle, and its CPU is shown);
- the fake Bot API (tests/fakes/telegram_api.py, this file with --serve-fake-api), which writes one line per
  message the bot sends to its stdout: the driver's signal that a step was answered;
- the driver (this process): the citizens, posting each one's next update to the proxy as Telegram would,
  once the answer to the previous one reached the fake API (bench/conversation.py's citizens).

Each citizen walks bench/conversation.py's tip-off (10 steps) and then taps «Send the tip» (an 11th
step): every step is an update posted and answered, and a script walked to its end is a tip. Each worker
first walks the script once, unmeasured. Runs are interleaved (1 worker, 2 workers, then 2, 1, …); figures
are medians over the rounds. CPU per step is a process's user+system time over the run divided by the steps
of the run (a worker's: by the steps the proxy gave it). PostgreSQL's is the sum over the server's processes
whose title names this database (its backends, its autovacuum), read from /proc every 0.2 s (a backend born
during the run counts whole); the server's shared processes (WAL writer, checkpointer …) are shown apart, as
they also serve other databases. "cores" is CPU seconds per second of the run; the machine's busy share of
all its cores comes from /proc/stat. After each run: tips in the database = tips sent, processed updates =
updates posted, replies = updates (each step answered once), or the bench stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.conversation import (  # noqa: E402
    TICK, TIPOFF, BotProcess, CountingTelegram, child_env, citizen, cpu_seconds, free_port, tinbao_config, warm_up)

SCRIPT = [*TIPOFF, ("tap", "Send the tip")]
TOKEN = "300:BENCH-workers"


# ------------------------------------------------------------------------------------- the fake Bot API
class ReplyLine(CountingTelegram):
    """The fake Bot API in a process of its own: each message the bot sends is a line on stdout for the driver
    (the message itself only when it has buttons: the citizen's next tap needs it)."""

    def note_reply(self, chat: int, message: dict) -> None:
        line = {"chat": chat, "message": message} if self.buttons(message) else {"chat": chat}
        os.write(1, json.dumps(line, ensure_ascii=False).encode() + b"\n")


async def serve_fake_api() -> None:
    fake = ReplyLine(TOKEN)
    await fake.start()
    os.write(1, f"{fake.base_url}\n".encode())
    await asyncio.Event().wait()  # until the driver terminates it


class ReplyMirror(CountingTelegram):
    """The driver's side of the fake Bot API: it makes the citizens' updates and learns of the bot's replies
    from the fake's lines. Never started: it serves nothing."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.posted, self.tips_sent = 0, 0

    def note_reply(self, chat: int, message: dict | None) -> None:
        if message:
            self._messages[(chat, message["message_id"])] = message  # what a tap on it quotes
        super().note_reply(chat, message or {})

    def _next_message_id(self, chat_id: int) -> int:
        # The bot's messages are numbered in the fake's process; a citizen's numbers stay clear of them.
        return 1_000_000 + super()._next_message_id(chat_id)

    def next_update(self, chat: int, action: str, value) -> dict:
        self.posted += 1
        self.tips_sent += (action, value) == SCRIPT[-1]
        return super().next_update(chat, action, value)


class FakeApiProcess:
    """The fake Bot API's process, its reply lines fed to the mirror as they come."""

    def __init__(self, mirror: ReplyMirror) -> None:
        self.mirror = mirror

    async def start(self) -> str:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve-fake-api", stdout=subprocess.PIPE, env=child_env(), limit=1 << 22)
        base_url = (await asyncio.wait_for(self.process.stdout.readline(), 60)).decode().strip()
        if not base_url.startswith("http://"):
            raise SystemExit(f"the fake Bot API did not start: {base_url!r}")
        self.reader = asyncio.create_task(self._read())
        return base_url

    async def _read(self) -> None:
        async for line in self.process.stdout:
            event = json.loads(line)
            self.mirror.note_reply(event["chat"], event.get("message"))

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    async def stop(self) -> None:
        if not hasattr(self, "process"):
            return  # it never started
        if hasattr(self, "reader"):
            self.reader.cancel()
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


# ---------------------------------------------------------------------------------------- the proxy
async def serve_proxy(listen: int, upstreams: list[int]) -> None:
    """Round robin over the workers, as nginx's upstream block does; a worker that refuses the connection is
    skipped (proxy_next_upstream error). /bench/use?workers=N and /bench/served are the driver's."""
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
    state = {"use": len(upstreams), "turn": 0}
    served = [0] * len(upstreams)
    passed = ("content-type", "x-telegram-bot-api-secret-token")

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in passed}
        for _ in range(state["use"]):
            worker = state["turn"] % state["use"]
            state["turn"] += 1
            try:
                async with http.post(f"http://127.0.0.1:{upstreams[worker]}{request.path_qs}", data=body,
                                     headers=headers) as answer:
                    payload = await answer.read()
            except aiohttp.ClientConnectionError:
                continue
            served[worker] += 1
            kept = {k: v for k, v in answer.headers.items() if k.lower() == "content-type"}
            return web.Response(status=answer.status, body=payload, headers=kept)
        return web.Response(status=502)

    async def use(request: web.Request) -> web.Response:
        state["use"] = int(request.query["workers"])
        return web.json_response(state)

    async def count(request: web.Request) -> web.Response:
        return web.json_response(served)

    app = web.Application()
    app.router.add_post("/bench/use", use)
    app.router.add_get("/bench/served", count)
    app.router.add_post("/{channel}/webhook", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", listen).start()
    print(f"proxy serving on {listen} for {upstreams}", flush=True)
    await asyncio.Event().wait()


# ------------------------------------------------------------------------------------- PostgreSQL
def postmaster_pid() -> int | None:
    """The PostgreSQL server on this machine: the postgres process whose parent is not one."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name == "postgres":
            try:
                parent = Path(f"/proc/{rest[1]}/stat").read_text()
            except OSError:
                continue
            if "(postgres)" not in parent:
                return int(entry.name)
    return None


class PostgresCpu:
    """CPU of the PostgreSQL server's processes over a run, read from /proc: the ones whose title names our
    database, and the shared ones (no database in their title, and the postmaster)."""

    SHARED = re.compile(r"checkpointer|background writer|walwriter|autovacuum launcher|logical replication|"
                        r"archiver|stats collector|logger")

    def __init__(self, database: str) -> None:
        self.database, self.postmaster = database, postmaster_pid()

    def _processes(self) -> dict[int, tuple[str, float]]:
        seen: dict[int, tuple[str, float]] = {}
        if self.postmaster is None:
            return seen
        children = Path(f"/proc/{self.postmaster}/task/{self.postmaster}/children").read_text().split()
        for pid in [self.postmaster, *map(int, children)]:
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                cpu = cpu_seconds(pid)
            except OSError:
                continue  # ended meanwhile
            kind = ("shared" if pid == self.postmaster or self.SHARED.search(title)
                    else "ours" if f" {self.database} " in f"{title} " else "other")
            seen[pid] = (kind, cpu)
        return seen

    async def __aenter__(self) -> PostgresCpu:
        self.start, self.last = self._processes(), {}
        self.sampler = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            self.last.update(self._processes())
            await asyncio.sleep(0.2)

    async def __aexit__(self, *exc) -> None:
        self.sampler.cancel()
        self.last.update(self._processes())
        self.cpu = {"ours": 0.0, "shared": 0.0, "other": 0.0}
        for pid, (kind, cpu) in self.last.items():
            self.cpu[kind] += cpu - self.start.get(pid, (kind, 0.0))[1]


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICK, sum(fields[:8]) / TICK


# ------------------------------------------------------------------------------------------ the run
async def recreate(url: str) -> None:
    import asyncpg
    name = urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"tinbao_\w+", name):
        raise SystemExit(f"--database: the bench drops it; its name must begin with tinbao_ (got {name!r})")
    admin = await asyncpg.connect(urlunsplit(urlsplit(url)._replace(path="/postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def database_counts(db) -> dict[str, int]:
    return {"tips": await db.fetchval("SELECT count(*) FROM tip"),
            "processed": await db.fetchval("SELECT count(*) FROM processed_update WHERE channel = 'telegram'")}


async def measure(*, proxy: BotProcess, workers: list[BotProcess], fake: FakeApiProcess, mirror: ReplyMirror,
                  db, database: str, use: int, citizens: int, seconds: float, first_chat: int) -> dict:
    async with aiohttp.ClientSession() as control:
        async with control.post(f"http://127.0.0.1:{proxy.port}/bench/use", params={"workers": use}):
            pass

        async def served() -> list[int]:
            async with control.get(f"http://127.0.0.1:{proxy.port}/bench/served") as answer:
                return await answer.json()

        served0, counts0 = await served(), await database_counts(db)
        posted0, tips0, replies0 = mirror.posted, mirror.tips_sent, sum(mirror.count.values())
        target = SimpleNamespace(name="proxy", port=proxy.port, fake=mirror, script=SCRIPT)
        latencies: list[float] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http, \
                PostgresCpu(database) as postgres:
            parts0 = [w.cpu_seconds() for w in workers] + [proxy.cpu_seconds(), fake.cpu_seconds()]
            busy0, own0, wall0 = machine_busy(), time.process_time(), time.perf_counter()
            steps = await asyncio.gather(*(citizen(target, http, first_chat + i, wall0 + seconds, latencies)
                                           for i in range(citizens)))
            wall, own, busy = time.perf_counter() - wall0, time.process_time() - own0, machine_busy()
            parts = [after - before for after, before in zip(
                [w.cpu_seconds() for w in workers] + [proxy.cpu_seconds(), fake.cpu_seconds()], parts0)]
        await asyncio.sleep(0.5)  # a reply the bot sent twice would arrive now
        served1, counts1 = await served(), await database_counts(db)
    total, per_worker = sum(steps), [after - before for after, before in zip(served1, served0)]
    posted, tips = mirror.posted - posted0, mirror.tips_sent - tips0
    replies = sum(mirror.count.values()) - replies0
    checks = {"tips in the database": (counts1["tips"] - counts0["tips"], tips),
              "processed updates": (counts1["processed"] - counts0["processed"], posted),
              "replies": (replies, posted), "steps through the proxy": (sum(per_worker), total)}
    if wrong := {name: f"{got} against {want}" for name, (got, want) in checks.items() if got != want}:
        raise SystemExit(f"{use} worker(s), {citizens} citizens: {wrong}")
    latencies.sort()
    *worker_cpu, proxy_cpu, fake_cpu = parts
    result = {"steps_s": total / wall, "p50": latencies[len(latencies) // 2] * 1000,
              "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
              "workers_ms": sum(worker_cpu) / total * 1000, "proxy_ms": proxy_cpu / total * 1000,
              "fake_ms": fake_cpu / total * 1000, "driver_ms": own / total * 1000,
              "pg_ms": postgres.cpu["ours"] / total * 1000, "pg_shared_ms": postgres.cpu["shared"] / total * 1000,
              "workers_cores": sum(worker_cpu) / wall, "proxy_cores": proxy_cpu / wall, "fake_cores": fake_cpu / wall,
              "driver_cores": own / wall, "pg_cores": postgres.cpu["ours"] / wall,
              "pg_shared_cores": postgres.cpu["shared"] / wall,
              "machine_busy": (busy[0] - busy0[0]) / (busy[1] - busy0[1]), "tips": tips, "steps": total}
    ours = sum(result[k] for k in ("workers_cores", "proxy_cores", "fake_cores", "driver_cores", "pg_cores",
                                   "pg_shared_cores"))
    result["others_cores"] = (busy[0] - busy0[0]) / wall - ours  # whatever else ran on the machine meanwhile
    for n, (cpu, served_n) in enumerate(zip(worker_cpu, per_worker), 1):
        result[f"w{n}_ms"] = cpu / served_n * 1000 if served_n else float("nan")
        result[f"w{n}_share"] = served_n / total
        result[f"w{n}_cores"] = cpu / wall
    return result


def report(results: dict[tuple[int, int], list[dict]]) -> None:
    """The medians over the rounds, as Markdown tables for bench/RESULTS.md."""
    median = {key: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for key, runs in results.items()}
    print("\nCPU ms per step (a worker's: per step it served; workers = their sum over all steps)")
    print("| citizens | workers | steps/s (runs' range) | p50 ms | p99 ms | worker 1 | worker 2 | workers | proxy "
          "| fake Bot API | driver | PostgreSQL (ours) | PostgreSQL shared |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (citizens, use), m in sorted(median.items()):
        runs = [r["steps_s"] for r in results[(citizens, use)]]
        w2 = f"{m['w2_ms']:.2f}" if use > 1 else "idle"
        print(f"| {citizens} | {use} | {m['steps_s']:,.0f} ({min(runs):,.0f}–{max(runs):,.0f}) | {m['p50']:.1f} | "
              f"{m['p99']:.1f} | {m['w1_ms']:.2f} | {w2} | {m['workers_ms']:.2f} | {m['proxy_ms']:.2f} | "
              f"{m['fake_ms']:.2f} | {m['driver_ms']:.2f} | {m['pg_ms']:.2f} | {m['pg_shared_ms']:.2f} |")
    print(f"\nCores used (CPU seconds per second; the machine has {os.cpu_count()})")
    print("| citizens | workers | worker 1 | worker 2 | proxy | fake Bot API | driver | PostgreSQL (ours) "
          "| PostgreSQL shared | everything else on the machine | machine busy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (citizens, use), m in sorted(median.items()):
        print(f"| {citizens} | {use} | {m['w1_cores']:.2f} | {m['w2_cores']:.2f} | {m['proxy_cores']:.2f} | "
              f"{m['fake_cores']:.2f} | {m['driver_cores']:.2f} | {m['pg_cores']:.2f} | {m['pg_shared_cores']:.2f} | "
              f"{m['others_cores']:.2f} | {m['machine_busy']:.0%} |")
    for citizens in sorted({c for c, _ in median}):
        if (citizens, 1) in median and (citizens, 2) in median:
            print(f"{citizens} citizens: 2 workers / 1 worker steps/s "
                  f"{median[(citizens, 2)]['steps_s'] / median[(citizens, 1)]['steps_s']:.2f}×")


async def main(args: argparse.Namespace) -> None:
    import asyncpg
    await recreate(args.database)
    database = urlsplit(args.database).path.lstrip("/")
    work = Path(tempfile.mkdtemp(prefix="tinbao-workers-"))
    mirror = ReplyMirror(TOKEN)
    fake = FakeApiProcess(mirror)
    workers: list[BotProcess] = []
    proxy = None
    db = None
    try:
        api_base = await fake.start()
        for n in (1, 2):  # one site: one keyring, one data folder; a config per worker for its port
            config, port = work / f"config-{n}.toml", free_port()
            config.write_text(tinbao_config(args.database, token=TOKEN, api_base=api_base, port=port),
                              encoding="utf-8")
            command = [sys.executable, "-m", "bot.cli", "--config", str(config)]
            if n == 1:  # the keyring and the data folder; the schema
                subprocess.run([*command, "init"], cwd=work, check=True, capture_output=True, env=child_env())
            workers.append(BotProcess(f"worker-{n}", [*command, "run"], ready="serving Telegram by webhook",
                                      port=port, fake=mirror, script=SCRIPT, cwd=work))
        for worker in workers:
            await worker.start()
        proxy_port = free_port()
        proxy = BotProcess("proxy", [sys.executable, __file__, "--serve-proxy",
                                     ",".join(str(p) for p in [proxy_port, *(w.port for w in workers)])],
                           ready="proxy serving", port=proxy_port, fake=mirror, script=SCRIPT, cwd=work)
        await proxy.start()
        db = await asyncpg.connect(args.database)
        chat = 2_000_000
        for worker in workers:  # one whole script each, not measured: what a process loads once is not a step
            chat += 10_000
            await warm_up(worker, chat)
        if PostgresCpu(database).postmaster is None:
            print("PostgreSQL's processes are not on this machine (or /proc hides them): its CPU reads 0")
        load = os.getloadavg()
        print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start; "
              f"{args.seconds:g} s per run, {args.rounds} rounds, interleaved; medians")
        counts = [int(n) for n in args.workers.split(",")]
        results: dict[tuple[int, int], list[dict]] = {}
        for citizens in [int(n) for n in args.citizens.split(",")]:
            for round_ in range(args.rounds):
                for use in (counts if round_ % 2 == 0 else counts[::-1]):
                    chat += 10_000
                    result = await measure(proxy=proxy, workers=workers, fake=fake, mirror=mirror, db=db,
                                           database=database, use=use, citizens=citizens, seconds=args.seconds,
                                           first_chat=chat)
                    results.setdefault((citizens, use), []).append(result)
                    print(f"  {citizens} citizens, {use} worker(s), round {round_ + 1}: {result['steps_s']:.0f} "
                          f"steps/s, workers {result['workers_ms']:.2f} ms/step, machine {result['machine_busy']:.0%} "
                          f"busy, {result['tips']} tips, all in the database once", flush=True)
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
        report(results)
    finally:
        if db is not None:
            await db.close()
        for process in [proxy, *workers]:
            if process is not None:
                process.stop()
        await fake.stop()
        errors = [w.name for w in workers
                  if hasattr(w, "log") and re.search(r"Traceback|ERROR", (work / f"{w.name}.log").read_text())]
        if errors:
            print(f"errors in the log of {errors}:", file=sys.stderr)
            for name in errors:
                print((work / f"{name}.log").read_text()[-3000:], file=sys.stderr)
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="per run; at 200 citizens a script of 11 steps needs ~15 s to end in a tip")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--citizens", default="50,200")
    parser.add_argument("--workers", default="1,2", help="how many workers the proxy uses, run by run (1 or 2)")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/tinbao_workers",
                        help="PostgreSQL database, dropped and made again (its name must begin with tinbao_)")
    parser.add_argument("--keep", action="store_true", help="keep the workers' logs and configs")
    parser.add_argument("--serve-fake-api", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-proxy", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments_ = arguments()
    if arguments_.serve_fake_api:
        asyncio.run(serve_fake_api())
    elif arguments_.serve_proxy:
        listen, *upstreams = (int(p) for p in arguments_.serve_proxy.split(","))
        asyncio.run(serve_proxy(listen, upstreams))
    else:
        asyncio.run(main(arguments_))
