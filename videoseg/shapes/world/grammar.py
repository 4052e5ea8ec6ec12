"""The shapes world's query language: structure, text, parser and resolver.

Used on both sides of the weights-free path of the paper's pipeline: the generator builds a
:class:`Query`, renders its text and checks, with :func:`resolve` over the ground-truth
:class:`World`, that it names exactly the intended objects; the symbolic model
(:mod:`videoseg.shapes.symbolic.model`) parses the same text back with :func:`parse_query` and resolves it
over the :class:`World` it *perceived* from pixels. The resolver is therefore the model's
"reasoning" step (paper step 2) for this world, and the generator's ambiguity check.

Conventions: times are seconds from the start of whatever frames the world was built from.
"Turns left" is meant from the mover's own point of view, the video seen as a map from above:
a shape moving right that turns left then moves *up* on the screen. In image coordinates (y down)
that is a negative cross product ``hx0 * hy1 - hy0 * hx1 < 0`` of the old and new headings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COLOURS: dict[str, tuple[int, int, int]] = {
    # RGB; saturated and spread in hue so that H.264's chroma blur cannot confuse them.
    "red": (220, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (235, 205, 25),
    "green": (35, 165, 65),
    "blue": (40, 80, 225),
    "purple": (150, 55, 195),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star")
EVENTS: tuple[str, ...] = ("turn_left", "turn_right", "stop", "appear", "leave")
EVENT_TEXT = {
    "turn_left": ("turns left", "turn left"),
    "turn_right": ("turns right", "turn right"),
    "stop": ("stops", "stop"),
    "appear": ("enters the scene", "enter the scene"),
    "leave": ("leaves the scene", "leave the scene"),
}
NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "both": 2, "2": 2, "3": 3, "4": 4}
_COLOUR_SYNONYMS = {
    "violet": "purple",
    "magenta": "purple",
    "lime": "green",
    "navy": "blue",
    "gold": "yellow",
}
_SHAPE_SYNONYMS = {
    "circle": "circle",
    "ball": "circle",
    "disc": "circle",
    "disk": "circle",
    "dot": "circle",
    "square": "square",
    "box": "square",
    "block": "square",
    "triangle": "triangle",
    "diamond": "diamond",
    "rhombus": "diamond",
    "star": "star",
}
_GENERIC_NOUNS = {"shape", "object", "thing", "one", "item", "figure"}
_DETERMINERS = {"the", "a", "an", "all", "every", "each", "any"}
_RELATIVES = {"that", "which", "who", "whose"}
_FILLER = {
    "is",
    "was",
    "gets",
    "got",
    "has",
    "been",
    "being",
    "to",
    "of",
    "in",
    "on",
    "scene",
    "frame",
    "video",
    "from",
    "then",
    "later",
    "first",
    "it",
    "goes",
    "went",
    "moves",
    "moving",
    "comes",
    "came",
    "view",
    "out",
    "into",
    "up",
    "shows",
    "showed",
    "most",
    "quickly",
}


@dataclass(frozen=True)
class ObjectRef:
    """A noun phrase: "the two blue squares", "the circle that appears after <EventRef>".

    count: 1 for a singular phrase, n for "the n ...", 0 for a plural without a number.
    Relations (at most one is used by the generator, the parser accepts several):
    event (the object does it), after / before (the object appears after / before the event),
    hidden_behind (it was hidden behind that object), fastest (the fastest among the matches).
    """

    colour: str | None = None
    shape: str | None = None
    count: int = 1
    event: str | None = None
    after: EventRef | None = None
    before: EventRef | None = None
    hidden_behind: ObjectRef | None = None
    fastest: bool = False

    @property
    def is_relational(self) -> bool:
        return bool(self.event or self.after or self.before or self.hidden_behind or self.fastest)


@dataclass(frozen=True)
class EventRef:
    """An event phrase ("the red square turns left"): a subject and one of :data:`EVENTS`."""

    subject: ObjectRef
    event: str


@dataclass(frozen=True)
class Query:
    """A whole expression: one or more noun phrases joined by "and"."""

    targets: tuple[ObjectRef, ...]
    unknown_words: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        """The expression type: reasoning when a phrase needs temporal / causal inference, else referring."""
        return "reasoning" if any(t.is_relational for t in self.targets) else "referring"

    @property
    def expected_count(self) -> int | None:
        """Number of objects the phrase names, None when a plural leaves it open."""
        if any(t.count == 0 for t in self.targets):
            return None
        return sum(t.count for t in self.targets)


# --------------------------------------------------------------------------- text


def _noun(shape: str | None, plural: bool) -> str:
    word = shape or "shape"
    return word + "s" if plural else word


def object_text(ref: ObjectRef) -> str:
    """Render a noun phrase (inverse of the parser for everything the generator builds)."""
    plural = ref.count != 1
    words = ["the"]
    if ref.count > 1:
        words.append({2: "two", 3: "three", 4: "four"}.get(ref.count, str(ref.count)))
    if ref.colour:
        words.append(ref.colour)
    words.append(_noun(ref.shape, plural))
    text = " ".join(words)
    form = 1 if plural else 0
    if ref.event:
        text += " that " + EVENT_TEXT[ref.event][form]
    if ref.after:
        text += f" that {('appear', 'appears')[form == 0]} after {event_text(ref.after)}"
    if ref.before:
        text += f" that {('appear', 'appears')[form == 0]} before {event_text(ref.before)}"
    if ref.hidden_behind:
        text += f" that {'were' if plural else 'was'} hidden behind {object_text(ref.hidden_behind)}"
    if ref.fastest:
        text += " that " + ("move" if plural else "moves") + " fastest"
    return text


def event_text(ev: EventRef) -> str:
    return f"{object_text(ev.subject)} {EVENT_TEXT[ev.event][0]}"


def query_text(query: Query) -> str:
    return " and ".join(object_text(t) for t in query.targets)


def describe(query: Query) -> str:
    """A human reading of the parse, for the reasoning chain."""
    parts = []
    for t in query.targets:
        what = " ".join(w for w in (t.colour, t.shape or "shape") if w)
        if t.count > 1:
            what = f"{t.count} x {what}"
        elif t.count == 0:
            what = f"every {what}"
        rel = []
        if t.event:
            rel.append(f"does '{EVENT_TEXT[t.event][0]}'")
        if t.after:
            rel.append(f"appears after [{event_text(t.after)}]")
        if t.before:
            rel.append(f"appears before [{event_text(t.before)}]")
        if t.hidden_behind:
            rel.append(f"was hidden behind [{object_text(t.hidden_behind)}]")
        if t.fastest:
            rel.append("moves fastest")
        parts.append(what + (" that " + " and ".join(rel) if rel else ""))
    return "; ".join(parts)


# --------------------------------------------------------------------------- parser


class QueryParseError(ValueError):
    """The text names no colour, shape or relation this world knows."""


_WORD_RE = re.compile(r"[a-z0-9]+")


def _singular(word: str) -> tuple[str, bool]:
    if word.endswith("es") and word[:-2] in ("box", "disc"):
        return word[:-2], True
    if word.endswith("s") and len(word) > 3 and word not in ("is", "was", "has"):
        return word[:-1], True
    return word, False


def _event_in(words: list[str]) -> tuple[str | None, int]:
    """First event verb in ``words`` and its index (-1 when none)."""
    for i, w in enumerate(words):
        base = re.sub(r"(s|ed|ing)$", "", w)
        if base in ("turn", "turned", "turns", "veer", "swerve"):
            for nxt in words[i + 1 : i + 3]:
                if nxt == "left":
                    return "turn_left", i
                if nxt == "right":
                    return "turn_right", i
        if base in ("stop", "stopp", "halt", "freez", "freeze", "froze", "rest"):
            return "stop", i
        if base in ("appear", "enter", "arriv", "arrive", "emerg", "emerge", "pop", "popp", "show"):
            return "appear", i
        if base in ("leav", "leave", "exit", "disappear", "vanish") or (
            w == "left" and (i == 0 or words[i - 1] not in ("turn", "turns", "turned", "to", "the"))
        ):
            return "leave", i
    return None, -1


def _parse_object(words: list[str], unknown: list[str]) -> ObjectRef:
    """Parse one noun phrase (words already lower-cased, no "and")."""
    colour = shape = None
    count = 1
    fastest = False
    plural_noun = False
    i = 0
    head_end = len(words)
    for j, w in enumerate(words):
        if w in _RELATIVES:
            head_end = j
            break
    # head: determiners, numbers, adjectives, colour, noun
    while i < head_end:
        w = words[i]
        base, plural = _singular(w)
        if w in _DETERMINERS:
            if w in ("all", "every", "each"):
                count = 0
        elif w in NUMBER_WORDS:
            count = NUMBER_WORDS[w]
        elif w in COLOURS or w in _COLOUR_SYNONYMS:
            colour = _COLOUR_SYNONYMS.get(w, w)
        elif base in _SHAPE_SYNONYMS or w in _SHAPE_SYNONYMS:
            shape = _SHAPE_SYNONYMS.get(w) or _SHAPE_SYNONYMS[base]
            plural_noun = plural and w not in _SHAPE_SYNONYMS
        elif base in _GENERIC_NOUNS:
            plural_noun = plural
        elif w in ("fastest", "quickest", "fast", "speedy", "quick"):
            fastest = True
        elif w not in _FILLER:
            unknown.append(w)
        i += 1
    if plural_noun and count == 1:
        count = 0
    event = None
    after = before = None
    hidden = None
    rest = words[head_end + 1 :] if head_end < len(words) else []
    if rest:
        if "after" in rest or "before" in rest:
            key = "after" if "after" in rest else "before"
            k = rest.index(key)
            sub_words = rest[k + 1 :]
            ev, at = _event_in(sub_words)
            if ev is None:
                unknown.extend(sub_words)
            else:
                # "after the red square turns left": the subject precedes the verb
                subject = _parse_object(sub_words[:at], unknown)
                ref = EventRef(subject=subject, event=ev)
                after, before = (ref, None) if key == "after" else (None, ref)
        elif "behind" in rest:
            k = rest.index("behind")
            hidden = _parse_object(rest[k + 1 :], unknown)
        elif any(w in ("fastest", "quickest", "fast", "quickly") for w in rest):
            fastest = True
        else:
            ev, _ = _event_in(rest)
            if ev is None:
                unknown.extend(w for w in rest if w not in _FILLER)
            event = ev
    return ObjectRef(
        colour=colour,
        shape=shape,
        count=count,
        event=event,
        after=after,
        before=before,
        hidden_behind=hidden,
        fastest=fastest,
    )


def parse_query(text: str) -> Query:
    """Parse an expression of this world's grammar; unknown words are kept, not fatal.

    Raises :class:`QueryParseError` when nothing usable (no colour, shape, generic noun or
    relation) is found.
    """
    if not isinstance(text, str):
        raise QueryParseError(f"the query is a {type(text).__name__}, not text")
    words = _WORD_RE.findall(text.lower())
    if not words:
        if not text.strip():
            raise QueryParseError("the query is empty")
        # e.g. a query in another script: "empty" would be wrong, and the reader knows only English
        raise QueryParseError(
            f"no English word in {text!r}: the shapes world's reader knows English colours ("
            + ", ".join(COLOURS)
            + "), shapes ("
            + ", ".join(SHAPES)
            + ") and events"
        )
    # split top-level conjunctions: "the red circle and the blue square"
    groups: list[list[str]] = [[]]
    for w in words:
        if w == "and" and groups[-1]:
            groups.append([])
        else:
            groups[-1].append(w)
    unknown: list[str] = []
    targets = []
    for g in groups:
        if not g:
            continue
        ref = _parse_object(g, unknown)
        head = g[: next((j for j, w in enumerate(g) if w in _RELATIVES), len(g))]
        knows_noun = any(_singular(w)[0] in _GENERIC_NOUNS for w in head)
        if ref.colour or ref.shape or ref.is_relational or knows_noun:
            targets.append(ref)
    if not targets:
        raise QueryParseError(
            "no colour (" + ", ".join(COLOURS) + "), shape (" + ", ".join(SHAPES) + ") or event found in "
            f"{text!r}"
        )
    return Query(targets=tuple(targets), unknown_words=tuple(dict.fromkeys(unknown)))


# --------------------------------------------------------------------------- world + resolver


@dataclass
class TrackFacts:
    """What is known about one object, from ground truth or from perception.

    first / last: times (s) it is first / last visible; events: (kind, time) with kind in EVENTS;
    hidden_behind: ids of objects it was hidden behind; speed: typical speed in px/s.
    """

    obj_id: int
    colour: str | None
    shape: str | None
    first: float
    last: float
    events: list[tuple[str, float]] = field(default_factory=list)
    hidden_behind: list[int] = field(default_factory=list)
    speed: float = 0.0

    def event_time(self, kind: str) -> float | None:
        times = [t for k, t in self.events if k == kind]
        return min(times) if times else None

    def name(self) -> str:
        return f"{self.colour or '?'} {self.shape or 'shape'} #{self.obj_id}"


@dataclass
class World:
    tracks: list[TrackFacts]
    start: float = 0.0
    end: float = 0.0

    def by_id(self, obj_id: int) -> TrackFacts | None:
        return next((t for t in self.tracks if t.obj_id == obj_id), None)


@dataclass
class Resolution:
    """Result of resolving one noun phrase: scored candidates and the reasoning steps taken."""

    ids: list[int]
    scores: dict[int, float]
    notes: list[str]
    confirmed: bool = True  # every returned object met every condition (False: a best guess)


def _matches(ref: ObjectRef, t: TrackFacts) -> bool:
    return (ref.colour is None or t.colour == ref.colour) and (ref.shape is None or t.shape == ref.shape)


def _event_time(ev: EventRef, world: World, notes: list[str], strict: bool) -> float | None:
    subj = resolve_object(ev.subject, world, strict=strict)
    notes.extend("  " + n for n in subj.notes)
    if not subj.ids:
        notes.append(f"I cannot find {object_text(ev.subject)}.")
        return None
    t = world.by_id(subj.ids[0])
    assert t is not None
    time = t.event_time(ev.event)
    if time is None:
        notes.append(f"{t.name()} is there but I did not see it {EVENT_TEXT[ev.event][1]}.")
        return None
    notes.append(f"{t.name()} {EVENT_TEXT[ev.event][0]} at about {time:.1f} s.")
    return time


def resolve_object(ref: ObjectRef, world: World, strict: bool = True) -> Resolution:
    """Which objects a noun phrase names.

    Colour and shape are hard filters. Each relation adds a condition; in ``strict`` mode
    (the generator's check) only objects meeting all of them are returned; otherwise objects are
    ranked by how many conditions they meet (the model's best effort when it saw too little).
    """
    notes: list[str] = []
    cands = [t for t in world.tracks if _matches(ref, t)]
    desc = " ".join(w for w in (ref.colour, ref.shape or "shape") if w)
    notes.append(f"{len(cands)} {desc}(s) seen: " + (", ".join(t.name() for t in cands) or "none") + ".")
    scores = {t.obj_id: 0.0 for t in cands}
    checks = 0
    if ref.event:
        checks += 1
        for t in cands:
            time = t.event_time(ref.event)
            if time is not None:
                scores[t.obj_id] += 1
                notes.append(f"{t.name()} {EVENT_TEXT[ref.event][0]} at about {time:.1f} s.")
    for ev, sign in ((ref.after, 1), (ref.before, -1)):
        if ev is None:
            continue
        checks += 1
        t_ev = _event_time(ev, world, notes, strict)
        for t in cands:
            if world.by_id(t.obj_id) is None:
                continue
            appear = t.event_time("appear")
            if t_ev is None:
                # best effort: prefer objects that appear at all (later is more likely "after")
                if not strict and appear is not None:
                    scores[t.obj_id] += 0.5 if sign > 0 else 0.25
                continue
            if sign > 0:
                ok = appear is not None and appear > t_ev
                why = "is there from the start" if appear is None else f"appears at about {appear:.1f} s"
            else:
                ok = appear is None or appear < t_ev
                why = "is there from the start" if appear is None else f"appears at about {appear:.1f} s"
            notes.append(f"{t.name()} {why}: {'fits' if ok else 'does not fit'}.")
            if ok:
                scores[t.obj_id] += 1
    if ref.hidden_behind:
        checks += 1
        occ = resolve_object(ref.hidden_behind, world, strict=strict)
        occ_ids = set(occ.ids)
        notes.extend("  " + n for n in occ.notes)
        for t in cands:
            if occ_ids & set(t.hidden_behind):
                scores[t.obj_id] += 1
                notes.append(f"{t.name()} was hidden behind {object_text(ref.hidden_behind)}.")
            elif not strict and t.hidden_behind:
                scores[t.obj_id] += 0.5
    if ref.fastest and cands:
        checks += 1
        best = max(cands, key=lambda t: t.speed)
        others = [t.speed for t in cands if t is not best]
        if not others or best.speed > 1.3 * max(others):
            scores[best.obj_id] += 1
            notes.append(f"{best.name()} is the fastest ({best.speed:.0f} px/s).")
        elif not strict:
            scores[best.obj_id] += 0.5
    full = [i for i, s in scores.items() if s >= checks]
    confirmed = True
    if strict or full:
        ids = full
    else:
        confirmed = False
        top = max(scores.values(), default=0.0)
        ids = [i for i, s in scores.items() if s == top]
        if ids and checks:
            notes.append(
                "I could not confirm every condition in these frames; best guess among: "
                + ", ".join(t.name() for t in cands if t.obj_id in ids)
                + "."
            )
    ids = sorted(ids, key=lambda i: -scores[i])
    if ref.count >= 1 and len(ids) > ref.count and not strict:
        notes.append(
            f"{len(ids)} objects fit but the query asks for {ref.count}; keeping the best supported."
        )
    return Resolution(ids=ids, scores=scores, notes=notes, confirmed=confirmed and bool(ids))


def resolve(query: Query, world: World, strict: bool = True) -> Resolution:
    """Resolve every noun phrase of the query; ids are the union, in phrase order."""
    ids: list[int] = []
    scores: dict[int, float] = {}
    notes: list[str] = []
    confirmed = True
    for ref in query.targets:
        r = resolve_object(ref, world, strict=strict)
        notes.extend(r.notes)
        confirmed = confirmed and r.confirmed
        for i in r.ids:
            if i not in ids:
                ids.append(i)
                scores[i] = r.scores[i]
    return Resolution(ids=ids, scores=scores, notes=notes, confirmed=confirmed)


def is_unambiguous(query: Query, world: World, obj_ids: list[int]) -> bool:
    """True when the query, resolved strictly, names exactly ``obj_ids`` and matches the counts."""
    for ref in query.targets:
        r = resolve_object(ref, world, strict=True)
        if ref.count >= 1 and len(r.ids) != ref.count:
            return False
        if ref.count == 0 and len(r.ids) < 2:
            return False
    got = resolve(query, world, strict=True).ids
    return sorted(got) == sorted(obj_ids)
