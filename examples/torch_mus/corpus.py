"""A procedurally generated character-level corpus (nothing is downloaded): English-like
sentences from a small grammar with number agreement and Zipf-distributed word choice, counting
lines and spelled-out sums. Deterministic for a given seed."""

import random

NOUNS = [("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("child", "children"), ("farmer", "farmers"),
         ("robot", "robots"), ("teacher", "teachers"), ("river", "rivers"), ("city", "cities"), ("tree", "trees")]
VERBS = [("sees", "see"), ("likes", "like"), ("finds", "find"), ("follows", "follow"), ("helps", "help"),
         ("watches", "watch"), ("counts", "count"), ("paints", "paint")]
ADJS = ["small", "old", "green", "quiet", "bright", "lazy", "happy", "tall", "red", "clever"]
PLACES = ["near the river", "in the city", "under a tree", "at home", "on the hill", "by the sea"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"]


def _zipf(rng: random.Random, n: int) -> int:
    weights = [1.0 / (i + 1) for i in range(n)]
    return rng.choices(range(n), weights)[0]


def _noun_phrase(rng):
    plural = rng.random() < 0.4
    noun = NOUNS[_zipf(rng, len(NOUNS))][1 if plural else 0]
    adj = ADJS[_zipf(rng, len(ADJS))] + " " if rng.random() < 0.5 else ""
    det = rng.choice(["the ", "some ", "two "]) if plural else rng.choice(["the ", "a ", "this "])
    if det == "a " and adj[:1] in "aeiou" and adj:
        det = "an "
    return det + adj + noun, plural


def _sentence(rng):
    kind = rng.random()
    if kind < 0.6:
        subj, plural = _noun_phrase(rng)
        verb = VERBS[_zipf(rng, len(VERBS))][1 if plural else 0]
        obj, _ = _noun_phrase(rng)
        place = " " + rng.choice(PLACES) if rng.random() < 0.4 else ""
        return f"{subj} {verb} {obj}{place}."
    if kind < 0.8:
        start = rng.randrange(0, 12)
        return " ".join(NUMBERS[start : start + rng.randrange(3, 7)]) + "."
    a, b = rng.randrange(0, 10), rng.randrange(0, 9)
    return f"{NUMBERS[a]} plus {NUMBERS[b]} is {NUMBERS[a + b]}."


def make_corpus(n_chars: int = 300_000, seed: int = 1) -> str:
    """About ``n_chars`` characters of text, one sentence per line."""
    rng = random.Random(seed)
    lines, total = [], 0
    while total < n_chars:
        s = _sentence(rng)
        s = s[0].upper() + s[1:]
        lines.append(s)
        total += len(s) + 1
    return "\n".join(lines) + "\n"
