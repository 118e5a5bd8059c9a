"""The tip-off questionnaire, loaded from TOML data (shipped, or overridden in config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from handlers.buttons import RESERVED_PREFIXES
from handlers.toml_files import read_toml

SHIPPED = Path(__file__).parents[1] / "data" / "questionnaire.toml"
ROLES = {"category", "area", "urgency"}
LANGUAGES = ("vi", "en")


class QuestionnaireError(ValueError):
    """The questionnaire file is wrong; the message names the step and key."""


@dataclass(frozen=True)
class Option:
    id: str
    labels: dict[str, str]

    def label(self, lang: str) -> str:
        return self.labels.get(lang) or self.labels["vi"]


@dataclass(frozen=True)
class Step:
    id: str
    kind: str
    labels: dict[str, str]
    prompts: dict[str, str]
    choices: tuple[Option, ...] = ()
    optional: bool = False
    free_text: bool = False
    min_length: int = 1
    max_length: int = 4000
    when: dict[str, tuple[str, ...]] = field(default_factory=dict)
    role: str | None = None
    urgent_choices: tuple[str, ...] = ()

    def label(self, lang: str) -> str:
        return self.labels.get(lang) or self.labels["vi"]

    def prompt(self, lang: str) -> str:
        return self.prompts.get(lang) or self.prompts["vi"]

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.choices if o.id == option_id), None)

    def applies(self, answers: dict) -> bool:
        """A conditional step asks only when every named earlier answer is one of the listed choices."""
        return all((answers.get(step_id) or {}).get("choice") in allowed for step_id, allowed in self.when.items())


@dataclass(frozen=True)
class Questionnaire:
    steps: tuple[Step, ...]

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def by_role(self, role: str) -> Step:
        return next(s for s in self.steps if s.role == role)

    @property
    def category_step(self) -> Step:
        return self.by_role("category")


def _texts(raw: dict, key: str, where: str) -> dict[str, str]:
    value = raw.get(key)
    if not isinstance(value, dict) or not isinstance(value.get("vi"), str) or not value["vi"].strip():
        raise QuestionnaireError(f"{where}.{key} needs a Vietnamese text: {key} = {{ vi = \"…\", en = \"…\" }}")
    return {lang: str(value[lang]) for lang in LANGUAGES if lang in value}


def load_questionnaire(path: Path | None = None) -> Questionnaire:
    """Read and check a questionnaire file; the shipped one when ``path`` is None."""
    # The kinds' behaviour needs the conversation machinery, which needs the settings this loader makes:
    # the registry is read when a file is loaded, not when this module is imported.
    from handlers.citizen.step_kinds import KINDS

    path = Path(path) if path else SHIPPED
    doc = read_toml(path, what="questionnaire", error=QuestionnaireError)
    steps: list[Step] = []
    seen: set[str] = set()
    for index, raw in enumerate(doc.get("steps", [])):
        where = f"steps[{index}]"
        step_id, kind = raw.get("id"), raw.get("kind")
        if not isinstance(step_id, str) or not step_id.isidentifier() or step_id in seen:
            raise QuestionnaireError(f"{where}.id must be a unique identifier, got {step_id!r}")
        if step_id in RESERVED_PREFIXES:
            raise QuestionnaireError(f"{where}.id {step_id!r} is reserved for the bot's own buttons; "
                                     f"choose another (reserved: {', '.join(sorted(RESERVED_PREFIXES))})")
        where = f"steps[{index}] ({step_id})"
        if kind not in KINDS:
            raise QuestionnaireError(f"{where}.kind must be one of {sorted(KINDS)}, got {kind!r}")
        choices = tuple(Option(id=str(c["id"]), labels=_texts({"l": c}, "l", f"{where}.choices"))
                        for c in raw.get("choices", []))
        when = {k: tuple(v) if isinstance(v, list) else (str(v),) for k, v in raw.get("when", {}).items()}
        for ref in when:
            if ref not in seen:
                raise QuestionnaireError(f"{where}.when names {ref!r}, which is not an earlier step")
        role = raw.get("role")
        if role is not None and role not in ROLES:
            raise QuestionnaireError(f"{where}.role must be one of {sorted(ROLES)}, got {role!r}")
        step = Step(
            id=step_id, kind=kind, labels=_texts(raw, "label", where), prompts=_texts(raw, "prompt", where),
            choices=choices, optional=bool(raw.get("optional", False)), free_text=bool(raw.get("free_text", False)),
            min_length=int(raw.get("min_length", 1)), max_length=int(raw.get("max_length", 4000)), when=when,
            role=role, urgent_choices=tuple(raw.get("urgent_choices", ())))
        problem = KINDS[kind].check(step, where)
        if problem:
            raise QuestionnaireError(problem)
        steps.append(step)
        seen.add(step_id)
    if not steps or steps[-1].kind != "review":
        raise QuestionnaireError(f"{path}: the last step must be of kind 'review'")
    for role, kind in (("category", "choice"), ("area", "area")):
        matching = [s for s in steps if s.role == role]
        if len(matching) != 1 or matching[0].kind != kind or matching[0].when:
            raise QuestionnaireError(f"{path}: exactly one unconditional {kind} step needs role = \"{role}\"")
    return Questionnaire(steps=tuple(steps))
