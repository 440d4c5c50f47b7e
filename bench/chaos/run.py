"""One chaos run: real broker, demo services, the inventory adapter and coordinators as
child processes; requests at a steady rate, 10% of them published again later; and
meanwhile coordinators SIGKILLed and restarted, one added and removed, the broker
restarted. Then every topic and the downstream records go to the oracle.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from bench.chaos.cluster import Broker, Child, base_env, orchestrator_command
from bench.chaos.inventory import EFFECTS_ENV, read_effects
from bench.chaos.oracle import Effect, SentRequest, Verdict, judge
from bench.chaos.services import OUTAGE_PREFIX, ChaosServices
from contracts import cloudevents
from handlers.demo.shop import DECLINED_CARD
from orchestrator.client import OrchestratorClient
from orchestrator.localkafka import bootstrap_from_env
from orchestrator.settings import CoordinatorSettings

FLOWS = Path(__file__).resolve().parents[2] / "handlers" / "demo" / "flows"
COORDINATOR_READY = "Coordinator running"
ADAPTER_READY = "Adapter 'inventory' serving"
READY_TIMEOUT_S = 90.0
SEND_GIVE_UP_S = 180.0

# (scenario, weight, flow, expected status)
SCENARIOS = [
    ("details", 25, "order-details", "completed"),
    ("details-partial", 10, "order-details", "completed"),
    ("details-unknown-order", 5, "order-details", "failed"),
    ("place", 35, "place-order", "completed"),
    ("place-declined", 10, "place-order", "failed"),
    ("place-outage", 10, "place-order", "failed"),
    ("place-no-stock", 5, "place-order", "failed"),
]


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """What a run does; the defaults are ``python -m bench.chaos``'s."""

    requests: int = 500
    rate: float = 10.0
    """Requests per second, at a steady pace."""
    kills: int = 6
    """Coordinators SIGKILLed (each restarted 0.5-3 s later)."""
    coordinators: int = 3
    duplicates: float = 0.1
    """Share of requests published a second time, the same record, at a random later time."""
    broker_restart: bool = True
    scale_out: bool = True
    """Add one more coordinator during the run, and remove it again (SIGTERM)."""
    seed: int | None = None
    partitions: int = 6
    latency_ms: tuple[int, int] = (20, 200)
    result_timeout_s: float = 120.0
    """How long to wait for the last results once everything was published."""
    settle_s: float = 5.0
    """How long to keep reading after the last result came (late duplicates)."""
    progress_every_s: float = 5.0
    workdir: Path | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    """A request to publish ``at`` seconds after publishing starts."""

    request_id: str
    scenario: str
    flow: str
    expect: str
    input: dict[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class Event:
    """A chaos event ``at`` seconds after publishing starts."""

    at: float
    kind: str
    """``kill``, ``scale-out``, ``scale-in`` or ``broker-restart``."""


@dataclass(frozen=True, slots=True)
class RunFigures:
    """What the run did to the system (beside the oracle's figures)."""

    seed: int
    seconds: float
    kills: int
    scale_events: int
    broker_restarts: int
    broker_down_s: float
    unexpected_exits: int
    send_errors: int
    duplicates_published: int
    workdir: Path

    def table(self) -> str:
        """The figures, one per line."""
        return "\n".join(
            [
                f"  seed {self.seed}, {self.seconds:.1f} s, logs in {self.workdir}",
                f"  coordinators SIGKILLed and restarted: {self.kills}",
                f"  coordinators added or removed: {self.scale_events}",
                f"  broker restarts: {self.broker_restarts} (down {self.broker_down_s:.1f} s)",
                f"  child processes that exited by themselves (restarted): {self.unexpected_exits}",
                f"  duplicate requests published: {self.duplicates_published}",
                f"  sends that failed and were sent again: {self.send_errors}",
            ]
        )


def input_for(scenario: str, request_id: str) -> dict[str, Any]:
    """The flow input of one scenario."""
    if scenario == "details":
        return {"order_id": "o-1"}
    if scenario == "details-partial":
        return {"order_id": "o-2"}  # names a product that does not exist
    if scenario == "details-unknown-order":
        return {"order_id": "o-404"}
    order = {
        "order_id": request_id,
        "items": [{"product_id": "p-1", "qty": 1}],
        "amount": 24.5,
        "card": "4242-4242-4242-4242",
        "address": "1 Chaos Lane",
    }
    if scenario == "place-declined":
        order["card"] = DECLINED_CARD
    elif scenario == "place-outage":
        order["order_id"] = f"{OUTAGE_PREFIX}{request_id}"
    elif scenario == "place-no-stock":
        order["items"] = [{"product_id": "p-3", "qty": 1}]  # p-3 is out of stock
    return order


def plan_requests(config: ChaosConfig, rng: random.Random) -> list[Planned]:
    """The requests of a run, ``1 / rate`` seconds apart, scenarios drawn by weight."""
    names = [name for name, *_ in SCENARIOS]
    weights = [weight for _, weight, *_ in SCENARIOS]
    by_name = {name: (flow, expect) for name, _, flow, expect in SCENARIOS}
    planned = []
    for number in range(config.requests):
        scenario = rng.choices(names, weights)[0]
        flow, expect = by_name[scenario]
        request_id = f"req-{number:05d}"
        planned.append(
            Planned(
                request_id=request_id,
                scenario=scenario,
                flow=flow,
                expect=expect,
                input=input_for(scenario, request_id),
                at=number / config.rate,
            )
        )
    return planned


def plan_events(config: ChaosConfig, duration: float, rng: random.Random) -> list[Event]:
    """Kills spread over 10-90% of the publishing time; an instance added at 15-35%
    and removed at 55-75%; the broker restarted at 40-60%."""
    events = [Event(rng.uniform(0.1, 0.9) * duration, "kill") for _ in range(config.kills)]
    if config.scale_out:
        events.append(Event(rng.uniform(0.15, 0.35) * duration, "scale-out"))
        events.append(Event(rng.uniform(0.55, 0.75) * duration, "scale-in"))
    if config.broker_restart:
        events.append(Event(rng.uniform(0.4, 0.6) * duration, "broker-restart"))
    return sorted(events, key=lambda event: event.at)


def coordinator_env(settings: CoordinatorSettings) -> dict[str, str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` and the ``ORCH_*`` topic, group and partition settings."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "ORCH_PARTITIONS": str(settings.partitions),
    }
    for name in type(settings).model_fields:
        if name.endswith("_topic") or name == "group_id":
            env[settings.env_name(name)] = str(getattr(settings, name))
    return env


async def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create the run's topics (fresh names, so none exists yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, count, 1) for name, count in topics.items()])
    finally:
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(100):
        numbers = consumer.partitions_for_topic(topic)
        if numbers:
            return [TopicPartition(topic, number) for number in sorted(numbers)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} does not exist")


async def read_all(bootstrap: str, topic: str, *, timeout_s: float = 60.0) -> list[Any]:
    """Every record of ``topic`` from the beginning to its end at the time of the call."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(p) < ends[p] for p in partitions]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end in {timeout_s:.0f} s")
            batch = await consumer.getmany(timeout_ms=500)
            for partition, partition_records in batch.items():
                records.extend(r for r in partition_records if r.offset < ends[partition])
        return records
    finally:
        await consumer.stop()


class ResultWatcher:
    """Reads the result topic from its beginning while the run goes on (for progress)."""

    def __init__(self, bootstrap: str, topic: str, *, expected: set[str]) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.expected = expected
        self.seen: set[str] = set()
        self.records = 0
        self.all_in = asyncio.Event()
        """Set once every expected request id has a result."""

    async def run(self) -> None:
        """Read until cancelled."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
        )
        await consumer.start()
        try:
            partitions = await _partitions(consumer, self.topic)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for partition_records in batch.values():
                    for record in partition_records:
                        self.records += 1
                        self.seen.add(_json_object(record.value).get("request_id", "?"))
                if self.expected <= self.seen:
                    self.all_in.set()
        finally:
            await consumer.stop()


def _json_object(value: bytes | None) -> dict[str, Any]:
    """A record's JSON object value ({} if it is not one)."""
    try:
        parsed = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class ChaosRun:
    """Runs one chaos run; :meth:`run` returns the oracle's verdict and the run's figures."""

    def __init__(self, config: ChaosConfig, *, say: Callable[[str], None] = print) -> None:
        self.config = config
        self.seed = config.seed if config.seed is not None else random.randrange(1_000_000)
        self.rng = random.Random(self.seed)
        self._print = say
        self._t0 = time.monotonic()
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="chaos-"))
        self.children: dict[str, Child] = {}
        self.wanted: set[str] = set()
        """Children that should run now: the watchdog restarts them if they exit."""
        self.sent: Counter[str] = Counter()
        self.send_errors = 0
        self.duplicates_published = 0
        self.kills = 0
        self.scale_events = 0
        self.broker_restarts = 0
        self.broker_down_s = 0.0
        self.unexpected_exits = 0
        self.broker_up = True
        self._restarts: set[asyncio.Task[None]] = set()

    def say(self, message: str) -> None:
        """A progress line, stamped with the seconds since the run began."""
        self._print(f"[{time.monotonic() - self._t0:6.1f}s] {message}")

    async def run(self) -> tuple[Verdict, RunFigures]:
        """The whole run; every process it started is stopped by its pid at the end."""
        config = self.config
        self.workdir.mkdir(parents=True, exist_ok=True)
        broker = Broker(
            external=bootstrap_from_env(), runtime_dir=self.workdir / "kafka", say=self.say
        )
        if config.broker_restart and not broker.restartable:
            self.say("KAFKA_BOOTSTRAP_SERVERS is set: the broker is not ours, no broker restart")
        self.say(
            f"chaos run: {config.requests} requests at {config.rate:g}/s, "
            f"{config.duplicates:.0%} published twice, {config.kills} kills, "
            f"{config.coordinators} coordinators, seed {self.seed}, logs in {self.workdir}"
        )
        await asyncio.to_thread(broker.start)
        try:
            with ChaosServices(latency_ms=config.latency_ms, seed=self.seed) as services:
                verdict = await self._run_with(broker, services)
        finally:
            for child in self.children.values():
                await asyncio.to_thread(child.stop)
            await asyncio.to_thread(broker.stop)
        figures = RunFigures(
            seed=self.seed,
            seconds=time.monotonic() - self._t0,
            kills=self.kills,
            scale_events=self.scale_events,
            broker_restarts=self.broker_restarts,
            broker_down_s=self.broker_down_s,
            unexpected_exits=self.unexpected_exits,
            send_errors=self.send_errors,
            duplicates_published=self.duplicates_published,
            workdir=self.workdir,
        )
        return verdict, figures

    async def _run_with(self, broker: Broker, services: ChaosServices) -> Verdict:
        config = self.config
        prefix = f"chaos.{uuid.uuid4().hex[:8]}"
        settings = CoordinatorSettings(
            bootstrap_servers=broker.bootstrap, partitions=config.partitions
        ).with_topics(prefix)
        inventory_topic = f"{prefix}.inventory.commands"
        await create_topics(
            broker.bootstrap,
            {
                settings.request_topic: config.partitions,
                settings.reply_topic: config.partitions,
                settings.result_topic: config.partitions,
                settings.dead_letter_topic: 1,
                inventory_topic: config.partitions,
            },
        )
        effects_file = self.workdir / "inventory-effects.jsonl"
        env = base_env(
            {
                **coordinator_env(settings),
                **services.env,
                "DEMO_INVENTORY_TOPIC": inventory_topic,
                EFFECTS_ENV: str(effects_file),
            }
        )
        self._define_children(env, settings=settings, prefix=prefix)
        first = ["adapter", *(f"chaos-{slot}" for slot in range(config.coordinators))]
        for name in first:
            self._start(name)
        await self._wait_ready(first)

        plan = plan_requests(config, self.rng)
        await self._publish_under_chaos(plan, settings=settings, broker=broker)

        self.say("stopping the coordinators and the adapter (SIGTERM), then reading every topic")
        self.wanted.clear()
        await asyncio.gather(*(asyncio.to_thread(child.stop) for child in self.children.values()))
        topics = (settings.result_topic, settings.dead_letter_topic, inventory_topic)
        results, dead_letters, commands = [await read_all(broker.bootstrap, t) for t in topics]
        return self._judge(
            plan,
            results=[_json_object(record.value) for record in results],
            dead_letters=[cloudevents.headers_to_dict(record.headers) for record in dead_letters],
            commands=[_json_object(record.value) for record in commands],
            effects=[*services.effects, *read_effects(effects_file)],
        )

    def _define_children(
        self, env: dict[str, str], *, settings: CoordinatorSettings, prefix: str
    ) -> None:
        """The adapter and the coordinator slots (the last slot is the scale-out one)."""
        command = orchestrator_command()
        adapter = [
            *command,
            *("adapter", "bench.chaos.inventory:inventory"),
            *("--command-topic", env["DEMO_INVENTORY_TOPIC"]),
            *("--group-id", f"{prefix}.inventory"),
            *("--dead-letter-topic", settings.dead_letter_topic),
        ]
        self.children["adapter"] = Child(
            "adapter", adapter, env=env, log=self.workdir / "adapter.log"
        )
        for slot in range(self.config.coordinators + 1):
            name = f"chaos-{slot}"
            self.children[name] = Child(
                name,
                [*command, "run", str(FLOWS)],
                env={**env, "ORCH_GROUP_INSTANCE_ID": name},
                log=self.workdir / f"coordinator-{name}.log",
            )

    async def _publish_under_chaos(
        self, plan: list[Planned], *, settings: CoordinatorSettings, broker: Broker
    ) -> None:
        """Publish the plan while the chaos events happen, then wait for the results."""
        config = self.config
        duration = config.requests / config.rate
        if not broker.restartable:
            config = replace(config, broker_restart=False)
        events = plan_events(config, duration, self.rng)
        twice = {
            planned.request_id
            for planned in self.rng.sample(plan, round(config.duplicates * len(plan)))
        }
        watcher = ResultWatcher(
            broker.bootstrap,
            settings.result_topic,
            expected={planned.request_id for planned in plan},
        )
        async with OrchestratorClient(settings, source="urn:orchestrator:chaos") as client:
            watching = asyncio.create_task(watcher.run())
            reporting = asyncio.create_task(self._report(plan, watcher))
            try:
                self.say(f"publishing {len(plan)} requests over {duration:.0f} s")
                await asyncio.gather(
                    self._publish_all(client, plan, twice), self._chaos(events, broker)
                )
                await asyncio.gather(*self._restarts)
                self.say("everything published; all chaos done; waiting for the last results")
                await self._await_results(watcher, watching)
            finally:
                reporting.cancel()
                watching.cancel()
                await asyncio.gather(reporting, watching, return_exceptions=True)

    def _judge(
        self,
        plan: list[Planned],
        *,
        results: list[dict[str, Any]],
        dead_letters: list[dict[str, str]],
        commands: list[dict[str, Any]],
        effects: list[Effect],
    ) -> Verdict:
        sent = [
            SentRequest(
                request_id=planned.request_id,
                flow=planned.flow,
                expect=planned.expect,
                scenario=planned.scenario,
                published=self.sent[planned.request_id],
            )
            for planned in plan
        ]
        # What the oracle judged, for a closer look at a failed run.
        (self.workdir / "oracle-input.json").write_bytes(
            orjson.dumps(
                {
                    "sent": [asdict(request) for request in sent],
                    "results": results,
                    "dead_letters": dead_letters,
                    "commands": commands,
                    "effects": [asdict(effect) for effect in effects],
                }
            )
        )
        return judge(
            sent, results=results, dead_letters=dead_letters, commands=commands, effects=effects
        )

    # -- processes ---------------------------------------------------------

    def _start(self, name: str) -> None:
        pid = self.children[name].start()
        self.wanted.add(name)
        self.say(f"started {name} (pid {pid})")

    async def _wait_ready(self, names: list[str]) -> None:
        """Wait for each child's 'running' line (a child that runs on without it is
        waited for 90 s, then taken as ready: the line's wording may change)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        for name in names:
            child = self.children[name]
            marker = ADAPTER_READY if name == "adapter" else COORDINATOR_READY
            while child.started_marker_count(marker) < 1:
                if not child.alive:
                    raise RuntimeError(f"{name} exited while starting:\n{child.tail()}")
                if time.monotonic() > deadline:
                    self.say(f"{name} runs but has not printed {marker!r}: going on")
                    break
                await asyncio.sleep(0.2)
        self.say(f"ready: {', '.join(names)}")

    def _watchdog(self) -> None:
        """Restart any child that should run and exited by itself."""
        for name in sorted(self.wanted):
            child = self.children[name]
            if not child.alive:
                self.unexpected_exits += 1
                self.say(f"{name} exited by itself (exit code {child.exit_code}): restarting it")
                self._start(name)

    async def _restart_later(self, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._start(name)

    # -- publishing --------------------------------------------------------

    async def _publish_all(
        self, client: OrchestratorClient, plan: list[Planned], twice: set[str]
    ) -> None:
        started = asyncio.get_running_loop().time()
        sends: list[asyncio.Task[None]] = []
        for planned in plan:
            await asyncio.sleep(max(0.0, started + planned.at - asyncio.get_running_loop().time()))
            sends.append(asyncio.create_task(self._send(client, planned, 0.0)))
            if planned.request_id in twice:
                later = self.rng.uniform(0.1, 15.0)
                sends.append(asyncio.create_task(self._send(client, planned, later, again=True)))
        await asyncio.gather(*sends)

    async def _send(
        self, client: OrchestratorClient, planned: Planned, delay: float, *, again: bool = False
    ) -> None:
        await asyncio.sleep(delay)
        give_up = time.monotonic() + SEND_GIVE_UP_S
        while True:
            try:
                await client.send(planned.flow, planned.input, request_id=planned.request_id)
            except (KafkaError, OSError) as error:
                # It may have landed all the same: the resend is then one more duplicate.
                self.send_errors += 1
                if time.monotonic() > give_up:
                    raise RuntimeError(f"cannot publish {planned.request_id}: {error}") from error
                await asyncio.sleep(1.0)
                continue
            self.sent[planned.request_id] += 1
            self.duplicates_published += again
            return

    async def _await_results(self, watcher: ResultWatcher, watching: asyncio.Task[None]) -> None:
        all_in = asyncio.create_task(watcher.all_in.wait())
        await asyncio.wait(
            {all_in, watching},
            timeout=self.config.result_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        all_in.cancel()
        if watching.done():
            watching.result()  # raises what stopped the reader
            raise RuntimeError("the result reader stopped")
        if watcher.all_in.is_set():
            self.say(f"every request has a result; reading {self.config.settle_s:g} s more")
        else:
            missing = len(watcher.expected - watcher.seen)
            self.say(f"gave up waiting: {missing} requests have no result")
        await asyncio.sleep(self.config.settle_s)

    async def _report(self, plan: list[Planned], watcher: ResultWatcher) -> None:
        while True:
            for _ in range(max(1, round(self.config.progress_every_s))):
                await asyncio.sleep(1.0)
                self._watchdog()
            up = [name for name in sorted(self.wanted) if name.startswith("chaos-")]
            answered = len(watcher.seen & watcher.expected)
            self.say(
                f"published {len(self.sent)}/{len(plan)} (+{self.duplicates_published} dup), "
                f"answered {answered}, result records {watcher.records}, "
                f"coordinators up {len(up)} ({', '.join(up)}), kills {self.kills}, "
                f"broker {'up' if self.broker_up else 'DOWN'}"
            )

    # -- chaos -------------------------------------------------------------

    async def _chaos(self, events: list[Event], broker: Broker) -> None:
        started = asyncio.get_running_loop().time()
        extra = f"chaos-{self.config.coordinators}"
        for event in events:
            await asyncio.sleep(max(0.0, started + event.at - asyncio.get_running_loop().time()))
            if event.kind == "kill":
                self._kill_one()
            elif event.kind == "scale-out":
                self.scale_events += 1
                self.say(f"scale out: adding {extra}")
                self._start(extra)
            elif event.kind == "scale-in":
                self.scale_events += 1
                self.wanted.discard(extra)
                self.say(f"scale in: stopping {extra} (SIGTERM)")
                await asyncio.to_thread(self.children[extra].stop)
                self.say(f"{extra} stopped")
            elif event.kind == "broker-restart":
                self.say(f"restarting the broker (pid {broker.pid})")
                self.broker_up = False
                down = await asyncio.to_thread(broker.restart)
                self.broker_up = True
                self.broker_restarts += 1
                self.broker_down_s += down
                self.say(f"broker back after {down:.1f} s (pid {broker.pid})")

    def _kill_one(self) -> None:
        # The scale-out instance is added and removed on its own schedule: not killed.
        slots = {f"chaos-{slot}" for slot in range(self.config.coordinators)}
        running = [name for name in sorted(slots & self.wanted) if self.children[name].alive]
        if not running:
            self.say("kill skipped: no coordinator runs")
            return
        name = self.rng.choice(running)
        self.wanted.discard(name)
        pid = self.children[name].kill()
        self.kills += 1
        delay = self.rng.uniform(0.5, 3.0)
        self.say(f"SIGKILL {name} (pid {pid}); restarting it in {delay:.1f} s")
        task = asyncio.create_task(self._restart_later(name, delay))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)
