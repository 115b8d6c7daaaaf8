"""Models generated from openapi/skillrun.yaml. Do not edit: run clients/python/scripts/generate.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType


class FieldError(BaseModel):
    field: Annotated[
        str,
        Field(
            description='Dotted path of the failing field in the body, e.g. `inputs.max_sentences`.'
        ),
    ]
    message: str


class ExecuteOptions(BaseModel):
    """
    How to run. Unknown options are a 422.
    """

    model_config = ConfigDict(
        extra='forbid',
    )
    timeout_ms: Annotated[
        int | None,
        Field(
            description='Ends the run with `status: failed` (error kind `timeout`) when it\ntakes longer; the running step is cancelled.\n',
            ge=1,
            le=86400000,
        ),
    ] = None
    on_disconnect: Annotated[
        Literal['continue', 'cancel'],
        Field(
            description='What a dropped connection does to the run. `continue`: it ends the\nview only; the run goes on and can be resumed. `cancel`: the run is\ncancelled (as by `POST /v1/runs/{run_id}/cancel`). No effect on `/execute/async`.\n'
        ),
    ] = 'continue'


RunStatus = TypeAliasType(
    "RunStatus",
    Annotated[
        Literal['queued', 'running', 'waiting', 'completed', 'failed', 'cancelled', 'interrupted'],
        Field(
            description="How a run ended (or that it has not yet). `waiting`: a step waits for\ninput (`step_waiting`; answer it with `POST /v1/runs/{run_id}/input`);\nthe run is unfinished, and counts toward its key's stored runs, not its\nrunning ones.\n"
        ),
    ],
)


StepStatus = TypeAliasType(
    "StepStatus",
    Annotated[
        Literal['completed', 'skipped', 'degraded', 'failed', 'cancelled', 'interrupted'],
        Field(
            description="A step's fate in the result. `cancelled` / `interrupted`: the step was\nrunning when the run was cancelled / the server went down (the run has\nthe same status; its `error` says so).\n"
        ),
    ],
)


class StepError(BaseModel):
    kind: Annotated[
        str,
        Field(
            description="What went wrong: `capability_error`, `timeout`, `expression_error`, `cancelled`, `interrupted` (the server shut down), `internal`, `gate_failed` (a gate with policy `fail` found something), `input_invalid` (a nested skill's inputs, or a capability's rendered input, that break the schema; the message names the field), `http_refused`, `http_error`, `http_status`, `http_too_large`, `http_too_many_redirects`, `http_unsupported` (`http.request`), `unconfigured`, `upstream_rate_limited`, `upstream_unavailable`, `upstream_status`, `upstream_protocol`, `upstream_error` (`llm.chat`), `limit_exceeded` (the run went past a server limit: events per run, `foreach` items), or a kind a capability names. By default `retry` repeats none of `expression_error`, `gate_failed`, `input_invalid`, `internal`, `http_refused`, `http_too_many_redirects`, `http_unsupported`, `unconfigured`, `upstream_status`."
        ),
    ]
    message: str


class StepSummary(BaseModel):
    id: str
    status: StepStatus
    duration_ms: Annotated[float | None, Field(ge=0.0)] = None
    error: StepError | None = None


class ExecuteResult(BaseModel):
    """
    The result of a run; also the payload of the stream's `done` event.
    """

    skill_id: str
    status: RunStatus
    outputs: Annotated[
        dict[str, Any],
        Field(
            description="The skill's outputs. Outputs whose steps did not run are absent."
        ),
    ]
    trace_id: str
    run_id: str
    duration_ms: Annotated[float, Field(ge=0.0)]
    steps: list[StepSummary]
    error: StepError | None = None


EventType = TypeAliasType("EventType", Literal['skill_start', 'step_start', 'step_completed', 'step_skipped', 'step_degraded', 'step_failed', 'skill_completed', 'done', 'step_retrying', 'step_fallback', 'gate_warning', 'skill_resumed', 'step_waiting', 'step_delta'])


class EventEnvelope(BaseModel):
    """
    Fields every event but `done` carries.
    """

    type: EventType
    message: Annotated[str, Field(description='A human-readable line.')]
    timestamp: Annotated[
        AwareDatetime, Field(description='RFC 3339, UTC, ending in `Z`.')
    ]
    step_id: Annotated[str | None, Field(...)]
    trace_id: str
    run_id: str


class SkillStartData(BaseModel):
    skill_id: str
    version: str
    execution_channel: Annotated[
        Literal['http', 'http-stream', 'http-async'],
        Field(
            description='`http-stream` for `/execute/stream`, `http` for `/execute`, `http-async` for `/execute/async`.'
        ),
    ]
    steps: Annotated[
        list[str],
        Field(
            description='The step ids in order, so a UI can draw them before they run.'
        ),
    ]
    digest: Annotated[
        str | None,
        Field(
            description='The content hash of the skill definition the run started with; a\nrun resumed after a restart continues only with the same definition.\n'
        ),
    ] = None
    timeout_ms: Annotated[
        float | None,
        Field(
            description="The run's time limit (the skill's `timeout` or `options.timeout_ms`, the smaller); it counts wall time from the run's start, across restarts. Absent: none.",
            ge=0.0,
        ),
    ] = None


class SkillStartEvent(EventEnvelope):
    type: Literal['skill_start']
    data: SkillStartData


class SkillResumedData(BaseModel):
    restored: Annotated[
        int,
        Field(
            description='Step instances (steps and `foreach` items, nested ones included) whose fate was kept.',
            ge=0,
        ),
    ]
    rerun: Annotated[
        int, Field(description='Step instances that were running and start over.', ge=0)
    ]
    resumes: Annotated[
        int,
        Field(
            description='How many times this run has been resumed, this one included.',
            ge=1,
        ),
    ]


class SkillResumedEvent(EventEnvelope):
    """
    The run goes on after its server stopped (a restart, or a lost node whose
    runs a survivor took over): the seam in the log. Steps and `foreach` items
    with a fate before it keep their fate and output and never run again. Each
    step instance that was started and had no fate yet is void: it starts over
    with a new `step_start` (at-least-once: its capability may run twice). Ids
    keep counting up; `skill_start` is not repeated.

    """

    type: Literal['skill_resumed']
    data: SkillResumedData


class GateFinding(BaseModel):
    """
    What a safety gate found (never the matched text itself).
    """

    kind: Annotated[str, Field(examples=['email'])]
    count: Annotated[int, Field(ge=1)]


class Delta(BaseModel):
    text: Annotated[
        str | None, Field(description="Text to append to the attempt's text so far.")
    ] = None
    progress: Annotated[
        float | None,
        Field(
            description='How far the step is (the latest value wins).', ge=0.0, le=1.0
        ),
    ] = None


StepId = TypeAliasType(
    "StepId",
    Annotated[
        str,
        Field(
            description="The step's id; for a step of a nested skill (`uses: skill:<id>`) the\npath from the top: `parent/child`, or `parent[i]/child` when the parent\nstep ran once per `foreach` item `i`.\n"
        ),
    ],
)


class StepPlace(BaseModel):
    """
    Where a step event belongs, beyond its `step_id`.
    """

    index: Annotated[
        int | None,
        Field(
            description='For a `foreach` step, the item (each item has its own `step_start` and terminal event).',
            ge=0,
        ),
    ] = None
    parent_step_id: Annotated[
        str | None,
        Field(
            description="For a nested skill's step, the `step_id` of the step that runs the nested skill."
        ),
    ] = None
    parent_index: Annotated[
        int | None,
        Field(
            description="The `index` of the parent step's item, when the parent runs per `foreach` item.",
            ge=0,
        ),
    ] = None
    path: Annotated[
        list[str] | None,
        Field(
            description="For a nested skill's step, the plain step ids from the top-level step down to this one."
        ),
    ] = None
    waited_ms: Annotated[
        float | None,
        Field(
            description="On the event that ends a wait (the step's terminal event, or `step_retrying` / `step_fallback` after a wait that timed out): how long the step waited for input since its `step_waiting`.",
            ge=0.0,
        ),
    ] = None


class SkillCompletedData(BaseModel):
    status: RunStatus
    duration_ms: Annotated[float, Field(ge=0.0)]


class SkillCompletedEvent(EventEnvelope):
    type: Literal['skill_completed']
    data: SkillCompletedData


class DoneEvent(ExecuteResult):
    """
    The final event: the run's `ExecuteResult` plus `type: done` and a
    human-readable `message`, like every other event's. It is always the
    last event of a stream, and there is exactly one.

    """

    type: Literal['done']
    message: Annotated[str, Field(examples=["Skill 'text.summarize' completed."])]


class SseFrame(BaseModel):
    """
    One Server-Sent Events frame as a client's parser sees it. `data` is a
    JSON text whose schema is `SkillEvent`; `event` equals its `type`.

    """

    event: EventType
    id: Annotated[
        str,
        Field(
            description="The event's sequence number in the run (starts at 1).",
            pattern='^[0-9]+$',
        ),
    ]
    data: str


class InputAnswer(BaseModel):
    """
    The answer to a step that waits for input (`step_waiting`).
    """

    model_config = ConfigDict(
        extra='forbid',
    )
    step_id: Annotated[
        str,
        Field(
            description="The waiting step's `step_id` as its `step_waiting` gave it (`parent/child` for a nested skill's step).",
            max_length=1024,
            min_length=1,
        ),
    ]
    index: Annotated[
        int | None, Field(description='For a `foreach` item, its `index`.', ge=0)
    ] = None
    value: Annotated[
        Any,
        Field(
            description='The answer; it must match the `schema` of the `step_waiting` event.'
        ),
    ]


class RunSummary(BaseModel):
    """
    A run without its inputs and result (as listed).
    """

    run_id: str
    skill_id: str
    status: RunStatus
    owner: Annotated[
        str,
        Field(
            description="The identity of the API key that started it (derived from the key's hash, never the key)."
        ),
    ]
    trace_id: str
    channel: Annotated[
        Literal['http', 'http-stream', 'http-async'],
        Field(
            description='The endpoint that started it (`/execute`, `/execute/stream`, `/execute/async`).'
        ),
    ]
    created_at: AwareDatetime
    started_at: Annotated[
        AwareDatetime | None,
        Field(description='When its first event was stored; null while `queued`.'),
    ]
    finished_at: Annotated[
        AwareDatetime | None,
        Field(description='When its `done` event was stored; null until then.'),
    ]


class Run(RunSummary):
    """
    A run; `result` is present once it has ended.
    """

    inputs: Annotated[
        dict[str, Any],
        Field(
            description='The inputs it was started with. Inputs the skill\'s schema marks\nsecret (`writeOnly: true` or `format: password`) are never stored:\neach appears as the string `"[REDACTED]"`, whatever its type.\n'
        ),
    ]
    result: ExecuteResult | None = None


class RunList(BaseModel):
    runs: list[RunSummary]
    next_cursor: Annotated[
        str | None,
        Field(description='Pass as `cursor` for the next page; null on the last page.'),
    ]


class SkillSummary(BaseModel):
    id: str
    version: str
    description: str


class SkillList(BaseModel):
    skills: list[SkillSummary]


class Capability(BaseModel):
    name: Annotated[
        str, Field(description='What a step names in `uses`, e.g. `text.keywords`.')
    ]
    description: str
    input_schema: Annotated[
        dict[str, Any], Field(description="The JSON Schema of the step's `input`.")
    ]
    output_schema: Annotated[
        dict[str, Any], Field(description="The JSON Schema of the capability's output.")
    ]
    gate: Annotated[
        bool,
        Field(
            description="True for a safety gate (a step's `gate`), false for a step's `uses`."
        ),
    ]


class CapabilityList(BaseModel):
    capabilities: list[Capability]


class Fallback(BaseModel):
    uses: Annotated[
        str, Field(description='The capability that runs when the step fails for good.')
    ]


class SkillStepGate(BaseModel):
    uses: Annotated[str, Field(description='The gate capability.')]
    policy: Annotated[
        Literal['degrade', 'fail', 'skip', 'warn'],
        Field(
            description='What findings do (`step_degraded`, `gate_failed`, `step_skipped`, `gate_warning`).'
        ),
    ]
    stage: Annotated[
        Literal['pre', 'post'],
        Field(description='`pre` checks the rendered input, `post` the output.'),
    ]


class Backoff(BaseModel):
    initial_ms: Annotated[float, Field(ge=0.0)]
    max_ms: Annotated[float, Field(ge=0.0)]
    multiplier: Annotated[float, Field(ge=1.0)]


class SkillStepRetry(BaseModel):
    """
    Present when a failed attempt is tried again (`step_retrying`).
    """

    max_attempts: Annotated[int, Field(description='Attempts in all.', ge=1)]
    backoff: Backoff
    jitter: Annotated[
        float,
        Field(description='The fraction of each delay that is random.', ge=0.0, le=1.0),
    ]
    on: Annotated[
        list[str] | None,
        Field(
            description='The error kinds retried; absent, every kind but the deterministic ones.'
        ),
    ] = None


class StoreHealth(BaseModel):
    """
    The run store this server uses (`SKILLRUN_DB`) and whether it answers now (readiness only); readiness is 503 while it cannot be read (e.g. Redis unreachable).
    """

    kind: Annotated[
        Literal['memory', 'sqlite', 'redis'],
        Field(
            description='`sqlite` (a file one process owns), `redis` (shared by every worker and node) or `memory` (runs lost at exit).'
        ),
    ]
    reachable: Annotated[bool, Field(description='The store answered a read just now.')]


class Problem(BaseModel):
    """
    An RFC 9457 problem.
    """

    type: Annotated[
        str | None,
        Field(
            description='A URI naming the kind of problem; `about:blank` when the status says it all.'
        ),
    ] = None
    title: str
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str | None = None
    instance: str | None = None
    errors: Annotated[
        list[FieldError] | None,
        Field(description='For 422, one entry per failing field.'),
    ] = None


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(
        extra='forbid',
    )
    inputs: Annotated[
        dict[str, Any],
        Field(
            description="The skill's inputs; their schema is the skill's `inputs` (see `GET /v1/skills/{skill_id}`)."
        ),
    ]
    options: ExecuteOptions | None = None


class StepStartData(StepPlace):
    uses: Annotated[
        str,
        Field(
            description='The capability the step runs, or `skill:<id>` for a nested skill.'
        ),
    ]
    items: Annotated[
        int | None,
        Field(
            description="For a `foreach` step's item (with `index`): how many items the\nstep has. Every item's first event carries it (its `step_start`,\nor its `step_skipped`), so the log tells which items never\nstarted, even after a crash.\n",
            ge=1,
        ),
    ] = None


class StepStartEvent(EventEnvelope):
    type: Literal['step_start']
    step_id: StepId
    data: StepStartData


class StepCompletedData(StepPlace):
    produced_output: Annotated[
        dict[str, Any],
        Field(
            description="The step's output (a foreach step's items each report their own)."
        ),
    ]
    duration_ms: Annotated[float, Field(ge=0.0)]
    fallback: Annotated[
        str | None,
        Field(
            description='Present when the output came from `on_error.fallback`: its capability.'
        ),
    ] = None


class StepCompletedEvent(EventEnvelope):
    type: Literal['step_completed']
    step_id: StepId
    data: StepCompletedData


class StepSkippedData(StepPlace):
    reason: Annotated[
        str,
        Field(
            description='Why: its condition is false, `foreach` gave no items, a `pre` gate\nwith policy `skip` found something, or `not run: …` (the run ended\nfirst: a step failed, it was cancelled, it timed out, or the server\ndied and its next start closed the log as `interrupted`).\n'
        ),
    ]
    condition: Annotated[
        str | None, Field(description="The step's `when` expression.")
    ] = None
    items: Annotated[
        int | None,
        Field(
            description="For a `foreach` step's item (with `index`): how many items the step has (see `StepStartEvent`).",
            ge=1,
        ),
    ] = None
    last_index: Annotated[
        int | None,
        Field(
            description="With `index`: this one event is the fate of the items `index`\nto `last_index` (inclusive), none of which started (the step\nended first). Absent: the event is item `index`'s alone.\n",
            ge=1,
        ),
    ] = None
    gate: Annotated[
        str | None, Field(description='The gate that skipped the step.')
    ] = None
    findings: list[GateFinding] | None = None


class StepSkippedEvent(EventEnvelope):
    type: Literal['step_skipped']
    step_id: StepId
    data: StepSkippedData


class StepDegradedData(StepPlace):
    produced_output: Annotated[
        dict[str, Any],
        Field(
            description='The output after redaction (`{}` when a `skip` gate dropped it).'
        ),
    ]
    gate: Annotated[str, Field(description="The gate's capability.")]
    findings: list[GateFinding]
    duration_ms: Annotated[float, Field(ge=0.0)]
    stage: Annotated[
        Literal['pre', 'post'] | None,
        Field(
            description='`pre`: the input was redacted before the call; `post`: the output.'
        ),
    ] = None
    policy: Annotated[
        Literal['degrade', 'skip'] | None,
        Field(
            description='`skip` (post stage): the output was dropped; dependants see it absent.'
        ),
    ] = None
    fallback: Annotated[
        str | None,
        Field(description='Present when the output came from `on_error.fallback`.'),
    ] = None


class StepDegradedEvent(EventEnvelope):
    type: Literal['step_degraded']
    step_id: StepId
    data: StepDegradedData


class StepFailedData(StepPlace):
    error: StepError
    duration_ms: Annotated[float, Field(ge=0.0)]
    on_error: Annotated[
        Literal['continue'] | None,
        Field(description='Present when the run goes on (`on_error: continue`).'),
    ] = None


class StepFailedEvent(EventEnvelope):
    type: Literal['step_failed']
    step_id: StepId
    data: StepFailedData


class StepRetryingData(StepPlace):
    attempt: Annotated[
        int, Field(description='The attempt that failed (1 is the first).', ge=1)
    ]
    error: StepError
    delay_ms: Annotated[
        float, Field(description='The wait before the next attempt.', ge=0.0)
    ]


class StepRetryingEvent(EventEnvelope):
    """
    An attempt of a step with `retry` failed and will be retried after
    `delay_ms`. Comes between the step's `step_start` and its one terminal
    event; only the final outcome is `step_completed` / `step_failed`.

    """

    type: Literal['step_retrying']
    step_id: StepId
    data: StepRetryingData


class StepFallbackData(StepPlace):
    error: StepError
    uses: Annotated[str, Field(description='The fallback capability.')]


class StepFallbackEvent(EventEnvelope):
    """
    A step failed for good and its `on_error.fallback` runs instead. Comes
    between the step's `step_start` and its one terminal event.

    """

    type: Literal['step_fallback']
    step_id: StepId
    data: StepFallbackData


class GateWarningData(StepPlace):
    gate: str
    stage: Annotated[
        Literal['pre', 'post'],
        Field(description="`pre`: the step's input; `post`: its output."),
    ]
    findings: list[GateFinding]


class GateWarningEvent(EventEnvelope):
    """
    A gate with policy `warn` found something; the value is kept. Comes
    between the step's `step_start` and its one terminal event.

    """

    type: Literal['gate_warning']
    step_id: StepId
    data: GateWarningData


class StepWaitingData(StepPlace):
    prompt: Annotated[
        str, Field(description='The question for the person who answers.')
    ]
    schema_: Annotated[
        dict[str, Any],
        Field(
            alias='schema',
            description="The JSON Schema the answer's `value` must match (the OpenAPI 3.0 subset, like skill inputs).",
        ),
    ]
    expires_at: Annotated[
        AwareDatetime | None,
        Field(
            description="When the wait ends with `step_failed` (kind `timeout`) if no answer came; absent: never (the run's own deadline still applies)."
        ),
    ] = None
    answer_url: Annotated[
        str, Field(description='Where to `POST` the answer: `/v1/runs/{run_id}/input`.')
    ]


class StepWaitingEvent(EventEnvelope):
    """
    A `human.input` step waits for an answer: the run's status is `waiting`
    until it comes (`POST` the answer to `answer_url`). Comes between the
    step's `step_start` and its one terminal event, which then carries
    `waited_ms`. The stream stays open meanwhile (with heartbeats); a
    client may also leave and come back through the runs API. After a
    restart the step starts over and waits again (a new `step_waiting`).

    """

    type: Literal['step_waiting']
    step_id: StepId
    data: StepWaitingData


class StepDeltaData(StepPlace):
    attempt: Annotated[
        int,
        Field(
            description='The attempt that made this output (1 is the first; a fallback is the attempt after the last failed one).',
            ge=1,
        ),
    ]
    sequence: Annotated[
        int,
        Field(
            description="The delta's number within its attempt (1, 2, …), without gaps.",
            ge=1,
        ),
    ]
    delta: Delta


class StepDeltaEvent(EventEnvelope):
    """
    Partial output of a running step, as it is made: text (a model's
    tokens) and/or progress. Comes only between the step's `step_start`
    and its one terminal event, whose output is always the whole result:
    a client that ignores deltas loses nothing. Deltas that arrive within
    a short window (`SKILLRUN_DELTA_WINDOW_MS`) are coalesced into one
    event, so a client may assume nothing about where one delta ends and
    the next begins, only that joining the `delta.text` of one attempt in
    `sequence` order gives the text as it was made. If the attempt then
    fails (`step_retrying`, `step_fallback`), its deltas are not part of
    the step's output: join only the attempt that produced it (the last
    `attempt` before the terminal event). Resuming with `Last-Event-ID`
    replays deltas like every other event.

    """

    type: Literal['step_delta']
    step_id: StepId
    data: StepDeltaData


SkillEvent = TypeAliasType(
    "SkillEvent",
    Annotated[
        SkillStartEvent | StepStartEvent | StepCompletedEvent | StepSkippedEvent | StepDegradedEvent | StepFailedEvent | SkillCompletedEvent | SkillResumedEvent | DoneEvent | StepRetryingEvent | StepFallbackEvent | GateWarningEvent | StepWaitingEvent | StepDeltaEvent,
        Field(
            description='One event of a run, told apart by `type`.',
            discriminator='type',
        ),
    ],
)


class SkillStep(BaseModel):
    id: str
    uses: str
    description: str | None = None
    when: Annotated[
        str | None,
        Field(description='A CEL condition; the step is skipped when it is false.'),
    ] = None
    gate: Annotated[
        str | None,
        Field(description="The safety gate capability checked on the step's output."),
    ] = None
    needs: Annotated[
        list[str] | None,
        Field(
            description='The steps this one waits for, when the file names them (else it waits for the step before).'
        ),
    ] = None
    foreach: Annotated[
        str | None, Field(description='The CEL list the step runs once per item of.')
    ] = None
    after: Annotated[
        list[str] | None,
        Field(
            description="The steps this one waits for, resolved: `needs` when the file names\nthem, else the step before (empty for a step that waits for none).\nThe edges of the skill's graph.\n"
        ),
    ] = None
    gates: Annotated[
        list[SkillStepGate] | None,
        Field(
            description='Every safety gate of the step, in the order they run (`gate` names the first).'
        ),
    ] = None
    max_parallel: Annotated[
        int | None,
        Field(description='With `foreach`: how many items run at once.', ge=1),
    ] = None
    retry: SkillStepRetry | None = None
    timeout_s: Annotated[
        float | None,
        Field(description='The time limit of one attempt, in seconds.', ge=0.0),
    ] = None
    on_error: Annotated[
        Literal['fail', 'continue', 'fallback'] | None,
        Field(
            description='What a failure does once retries are spent: `fail` ends the run,\n`continue` lets it go on, `fallback` runs `fallback.uses` instead.\n'
        ),
    ] = None
    fallback: Fallback | None = None
    skill: Annotated[
        str | None,
        Field(
            description="For `uses: skill:<id>`: the nested skill's id (`GET /v1/skills/{skill_id}`\ndescribes its steps). Its events carry `step_id` `parent/child`.\n"
        ),
    ] = None


class SkillDescription(BaseModel):
    """
    A loaded skill. Skill files are YAML in the format of the JSON Schema
    `openapi/skill.schema.json`, served at `GET /v1/schemas/skill.json`
    (needs, when, foreach, retry, timeout, on_error, gates, nested
    `skill:<id>`); see docs/SKILLS.md.

    """

    id: str
    version: str
    description: str
    inputs: Annotated[
        dict[str, Any],
        Field(
            description="The JSON Schema of the skill's `inputs`. Properties marked\n`writeOnly: true` or `format: password` are secret: never stored or\nreturned (`[REDACTED]` in runs and events).\n"
        ),
    ]
    outputs: Annotated[
        dict[str, Any], Field(description="The JSON Schema of the result's `outputs`.")
    ]
    steps: list[SkillStep]


class Health(BaseModel):
    status: Literal['ok']
    version: str | None = None
    skills: Annotated[
        int | None, Field(description='How many skills are loaded.', ge=0)
    ] = None
    skills_skipped: Annotated[
        int | None,
        Field(
            description='How many skill files (or directories) were skipped at start because\nof a problem (each logged with its path, line and reason).\n',
            ge=0,
        ),
    ] = None
    store: StoreHealth | None = None
