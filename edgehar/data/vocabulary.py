"""One activity vocabulary: canonical class names, each with a text prompt, so that data sets
with different label sets can be pooled and scored against each other.

Every named data set maps its own class names onto these (`registry.DataSet.labels`) and keeps
its own names too; a class with no canonical counterpart keeps its own name. A canonical name
may have a coarser `parent` ("stairs up" -> "stairs"): two data sets are compared on the
coarsest names both have.
"""

from __future__ import annotations

from dataclasses import dataclass



def activity_prompt(label: str) -> str:
    """The text describing class `label` (HAR-FM's prompt)."""
    return f"The status or/and activity of the subject is: {label}."


@dataclass(frozen=True)
class Activity:
    name: str
    phrase: str  # what the subject is doing, as the text prompt says it
    parent: str | None = None  # coarser canonical name, if any

    @property
    def prompt(self) -> str:
        """The text prompt of this class (HAR-FM's template, `activity_prompt`)."""
        return activity_prompt(self.phrase)


ACTIVITIES = {a.name: a for a in (
    Activity("walking", "walking"),
    Activity("running", "running or jogging"),
    Activity("sitting", "sitting"),
    Activity("standing", "standing"),
    Activity("lying", "lying down"),
    Activity("stairs", "walking on stairs"),
    Activity("stairs up", "walking up stairs", parent="stairs"),
    Activity("stairs down", "walking down stairs", parent="stairs"),
    Activity("cycling", "cycling"),
    Activity("jumping", "jumping"),
    Activity("rowing", "rowing"),
    Activity("turning", "turning around while walking"),
    # postural transitions
    Activity("standing up", "standing up from a seat"),
    Activity("sitting down", "sitting down on a seat"),
    Activity("lying down", "lying down from sitting or standing"),
    Activity("getting up", "getting up from lying"),
)}


def is_canonical(name: str) -> bool:
    return name in ACTIVITIES


def prompt(label: str) -> str:
    """The text prompt of a canonical name, or of any other class name as it stands."""
    a = ACTIVITIES.get(label)
    return a.prompt if a else activity_prompt(label)


def coarse(label: str) -> str:
    """The coarsest canonical name above `label` (itself when it has no parent)."""
    while label in ACTIVITIES and ACTIVITIES[label].parent:
        label = ACTIVITIES[label].parent
    return label


def canonical_names(label_names, label_map: dict[str, str]) -> tuple[str, ...]:
    """Each class name mapped onto the vocabulary; unmapped names stay as they are."""
    return tuple(label_map.get(n, n) for n in label_names)
