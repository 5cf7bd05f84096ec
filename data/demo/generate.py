"""The bundled demo corpus: synthetic Reddit-style posts in the exact ReDSM5 file format.

    python data/demo/generate.py OUT_DIR [--posts 600] [--seed 0] [--variant paraphrased]

ReDSM5 itself is under a data-use agreement, so the demo, the tests and the smoke runs use this
stand-in, generated deterministically (one `random.Random(seed)`, no global state, no set or
hash order) and committed as data/demo/{posts,annotations}.csv. It mimics what matters (DESIGN §3):
post lengths (log-normal, median ~250 words, a tail past 1,500 so posts need several windows),
~25% posts with no symptom, 1-5 symptoms per other post with 1-3 evidence sentences each, status-0
rows on look-alike sentences ("I've been sleeping great lately"), a few SPECIAL_CASE rows and
sentences that count for two symptoms, and Reddit typography (lower-case posts, curly quotes,
emoji, "...", "tired.I", abbreviations and decimals that must not split sentences).

Annotations are mostly verbatim; some are re-cased, re-spaced, typed with straight quotes for a
curly post, lightly edited (a word swapped or dropped, punctuation changed) or paraphrased beyond
recognition, so that every alignment rule fires and a few rows fail, as in the real corpus.
Evidence is phrased through varied templates with slot fillers so it has to be read, not
keyword-matched, yet stays unambiguous enough for a small model to learn.

--variant paraphrased writes the same posts and rows with every annotation paraphrased as in the
public ReDSM5 release (synonyms, reordered, kept or split clauses, merged sentences, tense and
person changed, fillers dropped, now and then a full reword; difflib ratio 0.2-0.8 to the true
sentence) and sentence_id off by one or by 3+ for about a third of rows, plus truth.csv with
each row's true sentence span (committed as data/paraphrased/; a second rng, so the verbatim
corpus is unchanged).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import re
import string
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from lib.errors import UserError, run_cli
from lib.symptoms import DSM_SYMPTOMS

_SLOTS = {
    "weeks": ["two weeks", "a month", "three months", "six weeks", "most of this year"],
    "person": [
        "mom",
        "dad",
        "sister",
        "brother",
        "girlfriend",
        "boyfriend",
        "wife",
        "husband",
        "roommate",
        "best friend",
        "partner",
    ],
    "place": ["work", "school", "class", "the office", "campus", "the store"],
    "hobby": [
        "painting",
        "gaming",
        "reading",
        "running",
        "playing guitar",
        "baking",
        "photography",
        "hiking",
        "drawing",
        "skateboarding",
    ],
    "game": ["Minecraft", "Overwatch", "Stardew Valley", "chess", "League", "Zelda"],
    "friends": [
        "my friends",
        "my coworkers",
        "my cousins",
        "the guys from work",
        "my old roommates",
    ],
    "n": ["10", "15", "20", "25", "30"],
    "month": ["January", "March", "the summer", "the spring", "the fall"],
    "junk": ["family-size bag of chips", "pint of ice cream", "box of cookies", "large pizza"],
    "late": ["3am", "4am", "5 in the morning", "2am"],
    "early": ["4am", "5am", "3:30"],
    "hours": ["12", "14", "15", "16"],
    "few": ["two", "three", "three or four"],
    "midday": ["noon", "lunchtime", "11am"],
    "chore": ["do the dishes", "clean my room", "do laundry", "cook"],
    "event": ["the breakup", "my dad's death", "losing my job", "the accident", "moving out"],
    "lesson": ["lecture", "a meeting", "class", "my training session"],
    "high": ["bridge near my apartment", "roof of my building", "overpass by the highway"],
    "pet": ["cat", "puppy", "hamster", "parrot", "rabbit"],
    "weather": ["rainy", "freezing", "really hot", "windy"],
    "job": ["barista", "nurse", "software tester", "cashier", "warehouse worker", "teacher"],
    "city": ["Ohio", "Toronto", "Leeds", "Melbourne", "Austin", "Dublin"],
    "age": ["19", "23", "27", "31", "35", "42"],
    "outing": ["the beach", "a lake cabin", "my aunt's place", "the city", "a concert"],
    "subject": ["biology", "accounting", "history", "computer science", "design"],
    "topic": ["budgeting", "moving apartments", "learning to drive", "finding a therapist"],
    "instrument": ["guitar", "piano", "violin", "drums"],
    "club": ["book club", "soccer team", "choir", "climbing gym"],
    "movie": ["Up", "Coco", "the new Pixar movie", "a Studio Ghibli film"],
    "food": ["lasagna", "curry", "ramen", "taco", "dumpling"],
}

_EVIDENCE = {
    "DEPRESSED_MOOD": """I feel empty inside almost every day now.
Most days I just feel sad for no reason at all.
I've been crying myself to sleep for {weeks}.
Everything feels hopeless and grey lately.
I can't shake this heavy sadness no matter what I do.
There's a dark cloud over me that never lifts.
I cry in the bathroom at {place} at least once a day.
I feel so down all the time that I barely recognise myself.
My mood has been in the gutter for {weeks} straight.
Honestly I just feel miserable from the moment I wake up.
Some nights I sit in my car and sob for an hour.
I feel numb and hopeless, like nothing will ever get better.
The sadness is always there, sitting on my chest.
I've felt really low and tearful ever since {event}.
My {person} keeps asking why I always look so sad.
I feel like I'm drowning in sadness and nobody notices.""",
    "ANHEDONIA": """I used to love {hobby} but now I don't care about it at all.
Nothing is fun anymore, not even {hobby}.
I haven't touched my {instrument} in months because it brings me no joy.
Hanging out with {friends} used to make me happy, now I feel nothing.
I stopped playing {game} because I just don't enjoy it anymore.
Even my favourite shows don't do anything for me now.
I have zero interest in the things I used to be passionate about.
I can't remember the last time I actually enjoyed something.
My friends invite me out and nothing about it appeals to me.
I don't get any pleasure from {hobby} like I used to.
Music, games, going out, none of it gives me any pleasure anymore.
I've lost all interest in sex and dating.
It's like the part of me that enjoyed things just switched off.
Stuff that used to excite me feels completely flat.
I quit the {club} because I stopped caring about it.""",
    "APPETITE_CHANGE": """I've lost {n} pounds since {month} without trying.
I barely eat anymore, maybe one small meal a day.
I have no appetite at all, food just tastes like cardboard.
I've been stress eating constantly and gained {n} pounds.
I forget to eat for whole days and I'm not even hungry.
My clothes are falling off me because I stopped eating properly.
I keep bingeing on a {junk} at night even when I'm not hungry.
The thought of eating makes me feel sick most days.
I've put on so much weight from eating my feelings.
I skip breakfast and lunch because I just don't feel like eating.
My appetite is completely gone and I have to force myself to eat.
I eat a whole {junk} in one sitting almost every night now.
My doctor was worried because I dropped {n} pounds in {weeks}.
I can't stop snacking and I've gone up two sizes since {month}.
Food doesn't interest me at all and I keep losing weight.""",
    "SLEEP_ISSUES": """I lie awake until {late} every night no matter what I try.
I've been sleeping {hours} hours a day and could still sleep more.
I wake up at {early} every morning and can't get back to sleep.
My insomnia is so bad I'm getting maybe {few} hours a night.
I can't fall asleep until the sun comes up.
I sleep through my alarms and stay in bed until the afternoon.
Some nights I don't sleep at all, I just stare at the ceiling.
My sleep schedule is completely wrecked and I'm up all night.
I need pills to sleep and even then I wake up every hour.
All I want to do is sleep, I'm in bed {hours} hours most days.
I keep waking up at {early} and lying there until my alarm.
I haven't had a full night's sleep in {weeks}.
I spend the whole weekend sleeping and still want more.
Getting to sleep takes me hours every single night.
My nights are a mess, I doze off at dawn and wake up at dinner time.""",
    "PSYCHOMOTOR": """I can't sit still, I keep pacing around my room for hours.
My {person} says I move and talk so slowly now, like I'm underwater.
I feel restless all the time and keep fidgeting with my hands.
Everything I do feels like slow motion, even walking to the kitchen.
People keep asking why I talk so slowly lately.
I keep pacing back and forth and can't stop tapping my foot.
My body feels heavy and sluggish, every movement takes ages.
I get so agitated that I can't stay seated through a meal.
My coworkers noticed I've been moving really slowly.
I wring my hands and pace the hallway for ages.
It's like my whole body has slowed down, even my speech.
I'm constantly jittery and restless, I can't keep my legs still.
It takes me forever to respond when people talk to me, like I'm moving through mud.
My {person} says I've been shuffling around the house like an old man.
I get up and sit down again over and over because I can't settle.""",
    "FATIGUE": """I'm exhausted all the time, even on days when I do nothing.
I have no energy to do even basic things like showering.
Just getting out of bed feels like running a marathon.
I'm so drained that cooking dinner feels impossible.
By {midday} I'm completely wiped out and need to lie down.
I feel physically tired every single day no matter what.
My body feels like it's made of lead, I have no energy at all.
Even small chores leave me completely worn out.
I'm constantly fatigued and can barely drag myself to {place}.
I don't have the energy to {chore} anymore.
I feel so run down that I stopped going to the gym.
Every little task takes all the energy I have.
I'm tired to the bone all day, every day.
Walking up the stairs leaves me needing to rest.
My energy is just gone, I run out of steam before the day starts.""",
    "WORTHLESSNESS": """I feel completely worthless, like I'm a burden to everyone.
I hate myself and everything about who I am.
I feel like a failure at everything I try.
I feel so guilty for letting my {person} down all the time.
I'm a useless waste of space and I know it.
I can't stop blaming myself for {event}.
I feel like I don't deserve anyone's kindness.
Everything that goes wrong feels like my fault.
I'm ashamed of who I've become.
I feel like such a burden to my {person}.
No matter what I achieve I still feel like I'm worth nothing.
I keep replaying every mistake I've made and hating myself for it.
I feel guilty about things that aren't even my fault.
I'm pathetic and everyone can see it.
Deep down I believe I'm a bad person who ruins everything.""",
    "COGNITIVE_ISSUES": """I can't concentrate on anything, I read the same page five times.
My mind goes blank in the middle of conversations.
I can't make even simple decisions like what to eat.
I keep forgetting things and my memory has gotten really bad.
I can't focus at work anymore and my mistakes keep piling up.
My brain feels foggy all day and I can't think straight.
I sat through {lesson} for an hour and didn't absorb a single word.
Choosing what to wear takes me forever because I can't decide.
I lose my train of thought constantly.
I can't follow the plot of a TV show anymore.
Studying is impossible because my mind keeps wandering off.
Simple emails take me hours because I can't put my thoughts together.
I'm so indecisive lately that I freeze when someone asks me to choose.
Reading anything longer than a text message is too hard to focus on.
I keep walking into rooms and forgetting why I'm there.""",
    "SUICIDAL_THOUGHTS": """I keep thinking about ending my life.
Sometimes I wish I could just go to sleep and never wake up.
I've been looking up ways to kill myself.
I don't want to be alive anymore.
I think about suicide almost every day now.
Last week I wrote a goodbye note to my {person}.
Part of me hopes I get hit by a car on the way to {place}.
I stood on the {high} last night and thought about jumping.
I've started giving my things away because I don't plan to be here much longer.
Death feels like the only way out of this.
I have a plan and I'm scared of how calm I feel about it.
Everyone would be better off if I was dead.
I keep imagining my own funeral and feeling relieved.
I've been stockpiling my pills just in case.
I told my {person} I'd be fine but I've been thinking about killing myself.""",
}

_LOOKALIKE = {  # related topic, but not evidence: annotated status 0
    "DEPRESSED_MOOD": """I've actually been in a really good mood this week.
I cried at the end of {movie} but they were happy tears.
My {person} has been feeling sad since the breakup, so I'm looking after them.
Honestly I feel pretty content with life right now.""",
    "ANHEDONIA": """I still really enjoy {hobby} on weekends.
I've been loving my new {hobby} hobby.
Had a blast at my cousin's party last weekend.
I got really into {game} this month and it's been fun.""",
    "APPETITE_CHANGE": """My appetite is totally normal.
I had a huge dinner with {friends} and it was great.
I've been eating healthy and my weight is stable.
I'm trying a new {food} recipe tonight.""",
    "SLEEP_ISSUES": """I've been sleeping great lately.
I get a solid eight hours most nights.
My {pet} sleeps on my keyboard all day.
I went to bed early and woke up refreshed.""",
    "PSYCHOMOTOR": """I went for a long run this morning.
I'm learning to dance and it's going well.
My nephew can't sit still, he's four.
I walk to {place} every day and it clears my head.""",
    "FATIGUE": """I have plenty of energy for the gym these days.
I was tired after the hike but in a good way.
I've been super productive at {place} this week.
I rearranged the whole apartment on Saturday and still had energy left.""",
    "WORTHLESSNESS": """I'm actually proud of how I handled the interview.
My friend said I'm a great listener and I believe her.
I made a mistake at {place} but fixed it quickly and moved on.
I know I'm good at my job.""",
    "COGNITIVE_ISSUES": """I finished a really long book in two days.
Work has been busy but I'm keeping on top of it.
I aced my {subject} exam last week.
I planned the whole trip myself and didn't forget a thing.""",
    "SUICIDAL_THOUGHTS": """I would never hurt myself, I have too much to live for.
I watched a documentary about suicide prevention.
My grandfather died last year at 91.
I'm really looking forward to my trip next summer.""",
}

_FILLER = """I'm {age} and I live with my {person} in {city}.
I work as a {job} and the hours are pretty long.
My {person} got a {pet} last week and it's adorable.
The weather here has been {weather} all week.
Sorry for the long post, I just needed to get this out.
Does anyone have advice for {topic}?
Dr. Patel changed my prescription to 2.5 mg last month.
I tried therapy, journaling, meditation, etc. and I'm still figuring things out.
My appointment with Mr. Alvarez is on Thursday at 3.30 in the afternoon.
We drove to {outing} for my {person}'s birthday.
I've been meaning to post here for a while.
My {person} and I have been together for a few years.
I started a new job at a bakery in {month}.
Rent went up again, which is annoying.
I've been on sertraline for about 1.5 years now.
My therapist suggested small things, e.g. a walk around the block after dinner.
Has anyone else been through something like this?
I don't really know what I'm asking for here.
Anyway, that's where things are at right now.
My car broke down on the highway last Tuesday.
I'm in my second year of college studying {subject}.
My {person} thinks I should talk to someone about it.
We have a family dinner every Sunday at my grandma's.
I play {game} with my cousin sometimes.
The bus to work takes about 45 minutes each way.
I've read a lot of posts here and they helped a bit.
My landlord still hasn't fixed the heating!
I have an exam in {subject} next week.
I'm not sure if this is the right subreddit for this.
TL;DR: things have been complicated lately.
Thanks for reading if you got this far.
My {person} works nights so I'm home alone a lot.
I moved to {city} about two years ago.
I'm seeing a new GP next month, Dr. Okafor.
We adopted a {pet} from the shelter in {month}.
Money has been tight since my hours got cut.
I grew up in a small town and moved for university.
My {person} is visiting next weekend.
I've been on a waiting list for counselling for 3.5 months.
My boss is fine, the job is just repetitive.
There's construction outside my window every morning.
I have two older brothers and a younger sister.
Edit: thanks for all the replies, I'm reading them now.
Update: I talked to my {person} about it.
I don't usually post on Reddit.
My phone screen cracked so typing this is a pain.
We're supposed to go camping in {month}.
I take the dog out twice a day.
I used to live in {city} before moving here.
Work is sending me to a conference in {city} next month.
My {person} keeps asking me to help with the wedding plans.
I've been watching a lot of cooking videos on YouTube.
The appointment cost $120, which is a lot for me.
My sister's kids are staying with us for the week.
I'm trying to save up for a car.
It's been a weird year overall.
My {person} always says "it will pass."
I volunteered at the food bank on Saturday.
Is it normal to feel this way after starting a new medication?
Our team lost the final, but whatever."""

_WHEN = (
    "Last week",
    "Yesterday",
    "On Monday",
    "A while ago",
    "This morning",
    "Over the weekend",
    "Back in March",
    "Two days ago",
    "Earlier today",
    "Last summer",
    "After work",
)
_HAPPENED = """my {person} and I went to {outing}
I picked up a couple of extra shifts at work
I fixed the kitchen sink myself
we watched {movie} at my {person}'s place
I called my {person} for the first time in ages
I finally booked a dentist appointment
I tried cooking {food} from scratch
my {pet} knocked a glass off the table
I helped my {person} move into a new flat
the power went out in our whole street
I got a parking ticket outside the {place}
a coworker brought donuts for everyone
I had to renew my passport
my {person} started a new job in {city}
we had a long talk about money
I went to a job interview for a {job} position
the landlord came by to check the smoke alarms
I signed up for a {subject} course online
my cousin asked me to be in her wedding
I took my {pet} to the vet for a checkup"""

_TWO_SYMPTOMS = [  # one sentence, two symptoms (as ReDSM5 has)
    ("I hate myself so much that I cry every night.", ("WORTHLESSNESS", "DEPRESSED_MOOD")),
    ("I'm too exhausted to care about anything I used to love.", ("FATIGUE", "ANHEDONIA")),
    ("I lie awake every night wishing I was dead.", ("SLEEP_ISSUES", "SUICIDAL_THOUGHTS")),
    ("I can't eat or think straight anymore.", ("APPETITE_CHANGE", "COGNITIVE_ISSUES")),
]
_SPECIAL = [
    "I think I might have depression but I'm not sure.",
    "My psychiatrist diagnosed me with major depression last year.",
    "I've been struggling with my mental health for a long time.",
]
_SWAPS = {
    "really": "very",
    "feel": "felt",
    "so": "very",
    "anymore": "lately",
    "every": "each",
    "just": "only",
    "always": "constantly",
    "can't": "cannot",
    "don't": "do not",
    "my": "the",
    "completely": "totally",
    "all": "the whole",
}
_DROPPABLE = ("just", "really", "so", "even", "actually", "all", "now")
_EMOJI = ("😭", "🙃", "😅", "💀", "🥲")


def _lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip()]


def _fill(rng: random.Random, template: str) -> str:
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    return template.format_map({name: rng.choice(_SLOTS[name]) for name in fields})


def _word_count(sentences: list[str]) -> int:
    return sum(len(s.split()) for s in sentences)


@dataclass(frozen=True)
class DemoPost:
    post_id: str
    text: str
    spans: tuple[tuple[int, int], ...]  # the generator's own sentences, for tests
    rows: tuple[tuple[str, str, str, int, str], ...]  # (sentence_id, text, symptom, status, why)


def _close(a: str, b: str) -> float:
    return SequenceMatcher(None, a.lower(), b.lower(), autojunk=False).ratio()


def _edit_lightly(rng: random.Random, sentence: str) -> str | None:
    """Swap or drop one word, or change the final punctuation: a fuzzy-rule annotation."""
    words = sentence.split(" ")
    for _ in range(4):
        kind = rng.choice(("swap", "drop", "punct"))
        out = list(words)
        if kind == "swap":
            spots = [i for i, w in enumerate(out) if w.lower() in _SWAPS]
            if not spots:
                continue
            i = rng.choice(spots)
            out[i] = _SWAPS[out[i].lower()]
        elif kind == "drop":
            spots = [i for i, w in enumerate(out) if w.lower() in _DROPPABLE and i > 0]
            if not spots:
                continue
            del out[rng.choice(spots)]
        else:
            out[-1] = out[-1].rstrip(".!?") + rng.choice(("!", "", "!!", " ."))
        edited = " ".join(out)
        if edited.lower() != sentence.lower() and _close(edited, sentence) >= 0.86:
            return edited
    return None


def _annotation_text(
    rng: random.Random, sentence: str, symptom: str, status: int, post: list[str]
) -> str:
    """Mostly the sentence verbatim; sometimes re-cased, re-spaced, edited or paraphrased."""
    if "\u2019" in "".join(post) and rng.random() < 0.5:  # annotators' tools straighten quotes
        sentence = sentence.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    roll = rng.random()
    if roll < 0.06:
        changed = sentence.lower() if rng.random() < 0.6 else sentence.upper()
        return changed if changed != sentence else sentence.swapcase()
    if roll < 0.11:
        words = sentence.split(" ")
        if len(words) > 2:
            i = rng.randrange(1, len(words))
            return " ".join(words[:i]) + rng.choice(("  ", "   ", " \n")) + " ".join(words[i:])
    if roll < 0.17 and len(sentence.split()) >= 5:
        edited = _edit_lightly(rng, sentence)
        if edited is not None:
            return edited
    if roll > 0.99 and symptom in _EVIDENCE:  # a paraphrase nothing in the post matches
        pool = _lines((_EVIDENCE if status else _LOOKALIKE)[symptom])
        for _ in range(5):
            other = _fill(rng, rng.choice(pool))
            if all(_close(other, seen) < 0.6 for seen in post):
                return other
    return sentence


def _explain(symptom: str, status: int) -> str:
    readable = symptom.replace("_", " ").lower()
    if status:
        return f"The sentence describes {readable}, matching the DSM-5 criterion."
    return f"Mentions a related topic but does not indicate {readable}."


def _post_sentences(rng: random.Random) -> list[tuple[str, list[tuple[str, int]]]]:
    """Sentences with their (symptom, status) labels, in post order, before typography."""
    items: list[tuple[str, list[tuple[str, int]]]] = []
    positive: list[str] = []
    if rng.random() >= 0.25:
        count = rng.choices((1, 2, 3, 4, 5), weights=(35, 30, 20, 10, 5))[0]
        positive = rng.sample(DSM_SYMPTOMS, count)
        for symptom in positive:
            n = rng.choices((1, 2, 3), weights=(70, 22, 8))[0]
            for template in rng.sample(_lines(_EVIDENCE[symptom]), n):
                labels = [(symptom, 1)]
                if rng.random() < 0.05:  # judged, and rejected, for a second symptom
                    labels.append((rng.choice([s for s in DSM_SYMPTOMS if s != symptom]), 0))
                items.append((_fill(rng, template), labels))
        if rng.random() < 0.04:
            text, pair = rng.choice(_TWO_SYMPTOMS)
            items.append((text, [(s, 1) for s in pair]))
        if rng.random() < 0.03:
            items.append((rng.choice(_SPECIAL), [("SPECIAL_CASE", 1)]))
    labelled = [symptom for _, labels in items for symptom, status in labels if status]
    others = [s for s in DSM_SYMPTOMS if s not in labelled]
    for _ in range(rng.choices((0, 1, 2), weights=(45, 40, 15))[0]):
        symptom = rng.choice(others)
        labels = [(symptom, 0)] if rng.random() < 0.9 else []
        items.append((_fill(rng, rng.choice(_lines(_LOOKALIKE[symptom]))), labels))
    target = min(3000, max(12, round(rng.lognormvariate(math.log(250), 0.75))))
    fillers = _lines(_FILLER)
    while _word_count([text for text, _ in items]) < target:
        if rng.random() < 0.5:
            items.append((_fill(rng, rng.choice(fillers)), []))
        else:  # a story line; keeps long posts from repeating the fixed fillers
            when, what = rng.choice(_WHEN), _fill(rng, rng.choice(_lines(_HAPPENED)))
            items.append((f"{when}, {what}{rng.choice('...!') if rng.random() < 0.1 else '.'}", []))
    rng.shuffle(items)
    labelled = [text for text, labels in items if labels]
    # An unlabelled copy of a labelled sentence would make its sentence_id ambiguous.
    return [(text, labels) for text, labels in items if labels or text not in labelled]


def _typeset(rng: random.Random, sentences: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Apply one post's Reddit typography and join; returns the text and sentence spans."""
    lower, curly = rng.random() < 0.1, rng.random() < 0.25
    styled = []
    for text in sentences:
        if lower:
            text = text[0].lower() + text[1:]
        if curly:
            text = text.replace("'", "\u2019")
            while text.count('"') >= 2:
                text = text.replace('"', "\u201c", 1).replace('"', "\u201d", 1)
        styled.append(text)
    parts: list[str] = []
    spans = []
    at = 0
    for i, text in enumerate(styled):
        following = styled[i + 1] if i + 1 < len(styled) else ""
        if text.endswith(".") and following[:1].isupper() and not text.endswith(".."):
            if rng.random() < 0.04:
                text = text[:-1] + "..."
        if rng.random() < 0.03:
            text = f"{text} {rng.choice(_EMOJI)}"
        styled[i] = text
        spans.append((at, at + len(text)))
        parts.append(text)
        at += len(text)
        if following:
            if text.endswith(".") and following[0].isupper() and rng.random() < 0.03:
                gap = ""  # "tired.I can't": a missing space
            elif rng.random() < 0.18:
                gap = rng.choice(("\n\n", "\n\n", "\n", " \n\n"))
            else:
                gap = " "
            parts.append(gap)
            at += len(gap)
    return "".join(parts), spans


def demo_posts(n_posts: int = 600, seed: int = 0) -> list[DemoPost]:
    rng = random.Random(seed)
    posts = []
    for index in range(n_posts):
        post_id = f"s_{rng.randint(100, 2999)}_{index}"
        items = _post_sentences(rng)
        text, spans = _typeset(rng, [t for t, _ in items])
        sentences = [text[start:end] for start, end in spans]
        rows = []
        for k, (_, labels) in enumerate(items):
            for symptom, status in labels:
                shown = _annotation_text(rng, sentences[k], symptom, status, sentences)
                rows.append((f"{post_id}_{k}", shown, symptom, status, _explain(symptom, status)))
        posts.append(DemoPost(post_id, text, tuple(spans), tuple(rows)))
    return posts


_POSTS_HEADER = ["post_id", "text"]
_ANNOTATIONS_HEADER = "post_id sentence_id sentence_text DSM5_symptom status explanation".split()
_TRUTH_HEADER = "row post_id sentence_id true_index n_sentences start end ops".split()


def _csv_text(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def generate_demo_corpus(n_posts: int = 600, seed: int = 0) -> tuple[str, str]:
    """(posts_csv, annotations_csv) as text, byte-for-byte the same for the same arguments."""
    posts = demo_posts(n_posts, seed)
    rows = [[post.post_id, *row] for post in posts for row in post.rows]
    return (
        _csv_text(_POSTS_HEADER, [[post.post_id, post.text] for post in posts]),
        _csv_text(_ANNOTATIONS_HEADER, rows),
    )


# --- The paraphrased variant ------------------------------------------------------------------
# The public ReDSM5 release paraphrased posts and annotations independently, so an annotation
# shares only part of its words with its sentence and its sentence_id can be off. This variant
# keeps the demo's posts and rows and rewrites each annotation from the generator's true
# sentence, with its own rng, so nothing of the verbatim corpus changes.

_MERGE_RATE = 0.08  # rows whose annotation paraphrases sentences k and k+1 together
_OP_RATES = {  # how often each operation is tried on a row
    "reword": 0.3,  # every known phrase swapped, kept when no content word is left shared
    "restructure": 0.7,  # reorder, keep_clause or split
    "fillers": 0.6,
    "synonyms": 0.95,
    "tense": 0.4,
    "person": 0.45,
}
_RATIO_BAND = (0.2, 0.8)  # difflib ratio to the true text, as measured on ReDSM5
_RATIO_MODE = 0.45  # most likely target ratio; the kept paraphrases' median lands near 0.55
_CHOICES = 8  # candidate paraphrases per row, the one nearest the row's target ratio is kept
_HINT_WEIGHTS = {"exact": 66, "near": 17, "far": 17}  # how sentence_id relates to k
_MAX_TRIES = 40

_SYNONYMS = {  # a phrase (lower case, first-person present) -> its replacements
    # moods and feelings
    "empty inside": ("hollow", "dead inside"),
    "empty": ("hollow", "blank"),
    "sad": ("down", "unhappy", "blue"),
    "sadness": ("sorrow", "gloom", "grief"),
    "so down": ("so low", "so blue"),
    "hopeless": ("bleak", "pointless"),
    "grey": ("dull", "colourless"),
    "heavy": ("leaden", "weighed down"),
    "heavy sadness": ("crushing sadness", "weighty sorrow"),
    "dark cloud": ("black cloud", "shadow"),
    "never lifts": ("won't go away", "never clears"),
    "miserable": ("wretched", "awful"),
    "numb": ("dead inside", "unfeeling"),
    "really low": ("very low", "down in the dumps"),
    "tearful": ("weepy", "teary"),
    "crying myself to sleep": ("sobbing until I drift off", "weeping myself to sleep"),
    "crying": ("weeping", "sobbing"),
    "cry": ("weep", "break down"),
    "sob": ("weep", "bawl"),
    "mood": ("state of mind", "headspace"),
    "in the gutter": ("at rock bottom", "through the floor"),
    "drowning in": ("sinking in", "swamped by"),
    "happy": ("glad", "cheerful"),
    "scared": ("frightened", "afraid"),
    "calm": ("peaceful", "at ease"),
    "relieved": ("at peace", "lighter"),
    "ashamed": ("embarrassed", "mortified"),
    "guilty": ("bad", "terrible"),
    "worried": ("concerned", "alarmed"),
    "proud of": ("pleased with", "happy with"),
    "content": ("satisfied", "at peace"),
    "adorable": ("cute", "sweet"),
    "annoying": ("irritating", "a pain"),
    "weird": ("strange", "odd"),
    "great": ("lovely", "amazing"),
    "good": ("decent", "nice"),
    "sleeping great": ("resting well", "sleeping really well"),
    "happy tears": ("tears of joy", "good tears"),
    "bad": ("terrible", "awful"),
    # interest and pleasure
    "used to love": ("once loved", "used to adore"),
    "love": ("adore", "really like"),
    "loving": ("enjoying", "adoring"),
    "enjoy": ("like", "get a kick out of"),
    "enjoyed": ("liked", "took pleasure in"),
    "fun": ("enjoyable", "a good time"),
    "joy": ("happiness", "delight"),
    "pleasure": ("enjoyment", "satisfaction"),
    "zero interest in": ("no desire for", "no appetite for"),
    "lost all interest in": ("stopped caring about", "gone cold on"),
    "passionate about": ("into", "excited about"),
    "excite": ("thrill", "spark anything in"),
    "appeals to me": ("tempts me", "interests me"),
    "brings me no joy": ("gives me nothing", "leaves me cold"),
    "don't do anything for me": ("leave me cold", "do nothing for me"),
    "care about": ("give a damn about", "care for"),
    "caring about": ("bothering with", "being into"),
    "hanging out with": ("spending time with", "seeing"),
    "make me happy": ("cheer me up", "lift me up"),
    "favourite": ("best-loved", "go-to"),
    "shows": ("series", "programmes"),
    "music": ("songs", "tunes"),
    "going out": ("nights out", "socialising"),
    "sex and dating": ("romance and intimacy", "dating and sex"),
    "switched off": ("shut down", "gone dark"),
    "stuff": ("things", "anything"),
    "feels completely flat": ("feels totally dull", "has lost its spark"),
    "had a blast": ("had a great time", "had so much fun"),
    "got really into": ("got hooked on", "fell for"),
    "hobby": ("pastime", "interest"),
    "party": ("celebration", "get-together"),
    # food and weight
    "eat": ("have food", "have a bite"),
    "eating": ("having food", "having meals"),
    "what to eat": ("what to have for dinner", "what to cook"),
    "forget to eat": ("skip meals", "go without food"),
    "stress eating": ("comfort eating", "eating out of stress"),
    "eating my feelings": ("comfort eating", "eating to cope"),
    "appetite": ("hunger", "desire to eat"),
    "food": ("grub", "eating"),
    "meal": ("plate of food", "bite"),
    "tastes like cardboard": ("has no flavour", "tastes of nothing"),
    "hungry": ("peckish", "starving"),
    "pounds": ("lbs", "lb"),
    "gained": ("put on", "packed on"),
    "put on so much weight": ("gained so much weight", "got so much heavier"),
    "losing weight": ("getting thinner", "shedding pounds"),
    "lost": ("dropped", "shed"),
    "dropped": ("lost", "shed"),
    "without trying": ("without meaning to", "by accident"),
    "clothes": ("outfits", "jeans"),
    "falling off me": ("hanging off me", "way too loose"),
    "properly": ("right", "normally"),
    "bingeing on": ("gorging on", "devouring"),
    "snacking": ("grazing", "nibbling"),
    "skip": ("miss", "go without"),
    "breakfast and lunch": ("the first two meals", "morning meals"),
    "feel like eating": ("want food", "fancy food"),
    "force myself": ("push myself",),
    "force myself to eat": ("make myself eat", "push myself to have food"),
    "in one sitting": ("at once", "in one go"),
    "sick": ("nauseous", "ill"),
    "doctor": ("GP", "physician"),
    "gone up two sizes": ("needed bigger clothes", "outgrown my jeans"),
    "recipe": ("dish", "meal"),
    "huge dinner": ("big meal", "massive dinner"),
    "eating healthy": ("eating well", "eating clean"),
    "stable": ("steady", "constant"),
    "totally normal": ("perfectly fine", "completely fine"),
    "normal": ("fine", "regular"),
    # sleep
    "lie awake": ("stay up", "toss and turn"),
    "sleep": ("rest", "doze"),
    "sleeping": ("dozing", "resting"),
    "fall asleep": ("drift off", "nod off"),
    "go to sleep": ("drift off", "nod off"),
    "get back to sleep": ("drift off again", "doze off again"),
    "wake up": ("get up", "come to"),
    "waking up": ("getting up", "coming to"),
    "insomnia": ("sleeplessness", "sleep trouble"),
    "until the sun comes up": ("until sunrise", "until dawn"),
    "sleep through my alarms": ("miss my alarms", "ignore my alarms"),
    "stay in bed": ("lie in bed", "stay under the covers"),
    "stare at the ceiling": ("look up at the ceiling", "gaze at the ceiling"),
    "sleep schedule": ("sleep pattern", "body clock"),
    "wrecked": ("ruined", "a mess"),
    "up all night": ("awake till morning", "awake all night"),
    "pills": ("tablets", "meds"),
    "every hour": ("hourly", "each hour"),
    "lying there": ("staying there", "waiting there"),
    "full night's sleep": ("proper night of rest", "decent night's rest"),
    "getting to sleep": ("falling asleep", "dropping off"),
    "a mess": ("chaos", "a disaster"),
    "doze off": ("fall asleep", "drift off"),
    "dawn": ("sunrise", "daybreak"),
    "dinner time": ("supper", "evening"),
    "solid": ("good", "full"),
    "went to bed early": ("turned in early", "had an early night"),
    "refreshed": ("rested", "fresh"),
    "keyboard": ("laptop", "desk"),
    # movement
    "sit still": ("stay still", "keep still"),
    "pacing": ("walking back and forth", "wandering"),
    "pace": ("walk up and down", "wander"),
    "restless": ("on edge", "unsettled"),
    "fidgeting with my hands": ("fiddling with my fingers", "twisting my fingers"),
    "fidgeting": ("fiddling", "squirming"),
    "slowly": ("sluggishly",),
    "so slowly": ("at a snail's pace", "so sluggishly"),
    "slow motion": ("a slowed-down film", "half speed"),
    "underwater": ("under water", "in treacle"),
    "talk": ("speak", "chat"),
    "back and forth": ("up and down", "to and fro"),
    "tapping my foot": ("bouncing my leg", "drumming my foot"),
    "sluggish": ("leaden", "slow"),
    "agitated": ("worked up", "wound up"),
    "stay seated": ("stay in my chair", "sit down"),
    "coworkers": ("colleagues", "workmates"),
    "noticed": ("spotted", "picked up on"),
    "wring my hands": ("twist my fingers", "knot my hands"),
    "hallway": ("corridor", "hall"),
    "for ages": ("for a long time", "forever"),
    "slowed down": ("gone slow", "wound down"),
    "speech": ("talking", "voice"),
    "jittery": ("twitchy", "jumpy"),
    "legs": ("feet", "knees"),
    "respond": ("answer", "reply"),
    "mud": ("sludge", "treacle"),
    "shuffling around": ("dragging my feet around", "plodding around"),
    "over and over": ("repeatedly", "time after time"),
    "settle": ("relax", "calm down"),
    "long run": ("long jog", "big run"),
    "learning to dance": ("taking dance lessons", "learning dancing"),
    "clears my head": ("helps me think", "calms my mind"),
    # energy
    "exhausted": ("worn out", "wiped", "drained"),
    "tired": ("weary", "worn out", "beat"),
    "drained": ("wiped out", "spent"),
    "wiped out": ("spent", "done in"),
    "worn out": ("tired out", "spent"),
    "fatigued": ("weary", "tired"),
    "run down": ("depleted", "beat"),
    "energy": ("strength", "stamina", "drive"),
    "no energy": ("no strength", "nothing left"),
    "showering": ("taking a shower", "washing"),
    "getting out of bed": ("getting up", "leaving my bed"),
    "running a marathon": ("climbing a mountain", "a marathon"),
    "cooking dinner": ("making dinner", "making a meal"),
    "impossible": ("too much", "out of reach"),
    "lie down": ("have a nap", "rest"),
    "physically tired": ("bone-tired", "tired in my body"),
    "made of lead": ("full of sand", "made of stone"),
    "chores": ("tasks", "housework"),
    "drag myself": ("haul myself", "crawl"),
    "task": ("job", "errand"),
    "to the bone": ("through and through", "deep down"),
    "walking up the stairs": ("climbing the stairs", "going upstairs"),
    "leaves me": ("has me", "gets me"),
    "needing to rest": ("in need of a break", "having to stop"),
    "run out of steam": ("burn out", "run dry"),
    "productive": ("efficient", "busy"),
    "rearranged": ("reorganised", "redid"),
    "apartment": ("flat", "place"),
    "plenty of": ("lots of", "loads of"),
    "hike": ("walk", "trek"),
    # self-worth
    "worthless": ("useless", "of no value"),
    "burden to": ("drain on", "weight on"),
    "hate myself": ("loathe myself", "can't stand myself"),
    "hate": ("loathe", "despise"),
    "hating": ("loathing", "despising"),
    "failure": ("loser", "flop"),
    "useless": ("pointless", "worthless"),
    "waste of space": ("waste of air", "waste of oxygen"),
    "blaming myself for": ("holding myself responsible for", "beating myself up over"),
    "deserve": ("merit", "earn"),
    "kindness": ("care", "warmth"),
    "goes wrong": ("goes badly", "falls apart"),
    "my fault": ("my own doing", "my mistake"),
    "achieve": ("accomplish", "manage"),
    "worth nothing": ("of no value", "a nobody"),
    "replaying": ("going over", "reliving"),
    "mistake": ("error", "slip-up"),
    "mistakes": ("errors", "slip-ups"),
    "pathetic": ("a joke", "hopeless"),
    "bad person": ("terrible human", "rotten person"),
    "ruins": ("wrecks", "spoils"),
    "deep down": ("at heart", "in my gut"),
    "believe i'm": ("think I'm", "am sure I'm"),
    "believe her": ("trust her", "take her word for it"),
    "handled": ("managed", "dealt with"),
    "great listener": ("good listener", "wonderful listener"),
    "fixed it quickly": ("sorted it out fast", "put it right quickly"),
    "moved on": ("let it go", "got over it"),
    # thinking
    "concentrate": ("focus", "pay attention"),
    "focus": ("concentrate",),
    "mind goes blank": ("head empties", "thoughts vanish"),
    "conversations": ("chats",),
    "decisions": ("choices",),
    "simple": ("basic", "easy"),
    "memory": ("recall", "ability to remember"),
    "forgetting things": ("losing track of things", "not remembering things"),
    "foggy": ("cloudy", "hazy"),
    "brain": ("head", "mind"),
    "think straight": ("think clearly", "get my thoughts straight"),
    "absorb": ("take in", "retain"),
    "forever": ("ages", "an age"),
    "decide": ("make up my mind", "choose"),
    "train of thought": ("thread", "place"),
    "follow the plot": ("keep up with the story", "follow the story"),
    "studying": ("revising", "doing coursework"),
    "wandering off": ("drifting", "drifting away"),
    "emails": ("messages", "notes"),
    "reading anything longer than a text message": (
        "getting through anything longer than a text",
        "reading more than a couple of lines",
    ),
    "reading": ("books", "a good book"),
    "put my thoughts together": ("organise my thoughts", "string a thought together"),
    "indecisive": ("unable to choose", "wishy-washy"),
    "freeze": ("lock up", "go blank"),
    "choose": ("pick", "decide"),
    "too hard": ("too difficult", "beyond me"),
    "piling up": ("stacking up", "adding up"),
    "finished": ("got through", "completed"),
    "aced": ("nailed", "passed with flying colours"),
    "exam": ("test", "final"),
    "busy": ("hectic", "full-on"),
    "keeping on top of it": ("managing it", "coping fine"),
    "forget a thing": ("miss a thing", "leave anything out"),
    # death
    "ending my life": ("taking my own life", "ending it all"),
    "kill myself": ("end it", "take my life"),
    "killing myself": ("ending it all", "taking my life"),
    "suicide": ("ending it", "taking my own life"),
    "suicide prevention": ("preventing suicide", "suicide awareness"),
    "alive": ("living", "here"),
    "goodbye note": ("farewell letter", "last letter"),
    "hit by a car": ("run over", "knocked down by a car"),
    "jumping": ("leaping", "throwing myself off"),
    "giving my things away": ("handing out my stuff", "giving away my belongings"),
    "better off": ("happier", "better"),
    "dead": ("gone", "no longer around"),
    "death": ("dying", "not being here"),
    "the only way out of this": ("my one escape", "the sole exit"),
    "imagining": ("picturing", "daydreaming about"),
    "funeral": ("burial", "memorial"),
    "stockpiling": ("hoarding", "saving up"),
    "hurt myself": ("harm myself", "injure myself"),
    "documentary": ("film", "programme"),
    "grandfather": ("grandpa", "granddad"),
    "died": ("passed away", "passed"),
    "looking forward to": ("excited about", "counting down to"),
    "trip": ("holiday", "vacation"),
    # everyday things
    "always": ("constantly", "continually"),
    "constantly": ("continually",),
    "completely": ("totally", "utterly"),
    "all the time": ("constantly", "nonstop"),
    "every day": ("daily", "each day"),
    "every night": ("nightly", "each night"),
    "every single day": ("each day", "day after day"),
    "every single night": ("each night", "night after night"),
    "most days": ("on most days", "usually"),
    "most nights": ("on most nights", "nearly every night"),
    "eight hours": ("8 hours",),
    "at least once a day": ("daily", "every single day"),
    "some nights": ("on some nights", "certain nights"),
    "at night": ("in the evening", "late at night"),
    "lately": ("recently", "these days"),
    "anymore": ("any longer", "these days"),
    "almost": ("nearly", "close to"),
    "barely": ("hardly", "scarcely"),
    "maybe": ("perhaps", "at most"),
    "nobody": ("no one", "not a soul"),
    "everyone": ("everybody", "all the people around me"),
    "people": ("folks", "others"),
    "someone": ("anyone", "a person"),
    "honestly": ("truthfully", "to be honest"),
    "actually": ("truly", "really"),
    "no matter what": ("regardless", "whatever happens"),
    "no matter what i do": ("whatever I do", "whatever I try"),
    "no matter what i try": ("whatever I do", "however hard I try"),
    "ever since": ("since",),
    "for no reason at all": ("without any cause", "out of nowhere"),
    "small": ("little", "tiny"),
    "whole": ("entire",),
    "keeps asking": ("keeps wondering", "always asks"),
    "remember": ("recall", "think of"),
    "stopped": ("quit", "gave up"),
    "quit": ("left", "dropped out of"),
    "tried": ("attempted", "had a go at"),
    "trying": ("attempting",),
    "called": ("phoned", "rang"),
    "friends": ("mates", "pals"),
    "friend": ("mate", "pal"),
    "at work": ("at my job", "on the job"),
    "job": ("position", "role"),
    "car": ("vehicle", "motor"),
    "bathroom": ("restroom", "toilets"),
    "room": ("bedroom",),
    "house": ("home", "place"),
    "weekend": ("Saturday and Sunday",),
    "weekends": ("Saturdays", "days off"),
    "this morning": ("earlier today", "first thing today"),
    "tonight": ("this evening", "later today"),
    "last week": ("the other week", "a week ago"),
    "money": ("cash", "finances"),
    "advice": ("tips", "suggestions"),
    "landlord": ("property manager", "owner"),
    "repetitive": ("boring", "samey"),
    "construction": ("building work", "roadworks"),
    "replies": ("answers", "comments"),
    "cracked": ("broke", "smashed"),
    "typing": ("writing", "texting"),
    "visiting": ("coming over", "coming to stay"),
    "moved": ("relocated", "went"),
    "medication": ("meds", "medicine"),
    "prescription": ("meds", "dosage"),
    "therapist": ("counsellor", "psychologist"),
    "therapy": ("counselling", "treatment"),
    "appointment": ("booking", "session"),
    "volunteered": ("helped out", "pitched in"),
    "fixed": ("repaired", "sorted"),
    "watched": ("saw", "put on"),
    "long post": ("wall of text", "lengthy post"),
    "sorry": ("apologies",),
    "thanks": ("thank you", "cheers"),
    "highway": ("motorway", "freeway"),
    "broke down": ("died", "gave out"),
    "struggling with": ("battling", "fighting"),
    "mental health": ("wellbeing", "state of mind"),
    "diagnosed me with": ("told me I have", "said I had"),
    "have depression": ("be depressed", "have clinical depression"),
    "major depression": ("severe depression", "MDD"),
    "psychiatrist": ("shrink", "psych doctor"),
    "last year": ("a year ago", "the year before"),
    "old man": ("pensioner", "old guy"),
    "around the house": ("around the place", "about the flat"),
    "not sure": ("unsure", "uncertain"),
    "forgetting why i'm there": ("not knowing why I came in", "blanking on why I came in"),
    "walking into rooms": ("entering rooms", "going into a room"),
    "live with": ("share a place with", "stay with"),
    "the weather here": ("the weather where I live", "the weather round here"),
    "all week": ("the whole week", "for days"),
    "drove to": ("went to", "took the car to"),
    "birthday": ("birthday party", "big day"),
    "meaning to": ("wanting to", "planning to"),
    "for a while": ("for some time", "for ages"),
    "together": ("a couple", "dating"),
    "a few years": ("several years", "some years"),
    "something like this": ("anything similar", "the same thing"),
    "asking for": ("looking for", "after"),
    "anyway": ("in any case", "either way"),
    "where things are at": ("how things stand", "where I am"),
    "family dinner": ("family meal", "big family meal"),
    "every sunday": ("each Sunday", "on Sundays"),
    "sometimes": ("now and then", "from time to time"),
    "about 45 minutes": ("three quarters of an hour", "roughly 45 minutes"),
    "each way": ("in each direction",),
    "a lot of": ("lots of", "loads of"),
    "a lot": ("often", "loads"),
    "helped a bit": ("did some good", "helped somewhat"),
    "works nights": ("does night shifts", "is on nights"),
    "home alone": ("by myself at home", "on my own"),
    "next month": ("in a few weeks", "the month after this"),
    "adopted": ("took in", "rescued"),
    "shelter": ("rescue centre", "pound"),
    "waiting list": ("waitlist", "queue"),
    "counselling": ("therapy",),
    "older brothers": ("big brothers",),
    "younger sister": ("little sister",),
    "talked to": ("spoke to", "had a chat with"),
    "usually": ("normally", "often"),
    "supposed to": ("meant to", "planning to"),
    "go camping": ("camp out", "go on a camping trip"),
    "twice a day": ("two times a day", "morning and evening"),
    "take the dog out": ("walk the dog", "take the dog for a walk"),
    "used to live": ("once lived", "lived"),
    "before moving here": ("before I moved here", "before the move"),
    "sending me to": ("making me go to", "flying me to"),
    "conference": ("work event", "convention"),
    "cooking videos": ("recipe videos", "food clips"),
    "kids": ("children", "little ones"),
    "staying with us": ("stopping with us", "at our place"),
    "for the week": ("this week", "for seven days"),
    "on sertraline": ("on an SSRI", "taking sertraline"),
    "gp": ("doctor", "family doctor"),
}

_STOP_WORDS = frozenset(
    """a about after all also am an and any are as at be been being but by can can't could did
    didn't do does doesn't don't for from had has have haven't he he's her hers herself him
    himself his how i i'd i'm i've if in is isn't it it's its just me mine my myself no not of
    on or our out she she's so some than that that's the their theirs them themselves then
    there there's these they they're they've this those to too up us very was we were what
    when where which who why will with would you your""".split()
)
_FILLERS = (  # (pattern, replacement) for words an annotator's paraphrase leaves out
    (r"^(?:honestly|actually|so),? ", ""),
    (r"(?<![\w'])(?:just|really|honestly|actually|literally|lately|anymore|pretty) ", ""),
    (r"(?<!right) (?:lately|anymore|at all|now)(?=[.,!?]|$)", ""),
    (r"(?<!not )(?<![\w'])even (?!then)", ""),
    (r"(?<=\w) so (?=\w+(?:[.,!?]|$))", " "),
    (r", like ", ", "),
)
_ADVERBS = frozenset(
    """just really still always barely never also finally actually even once rarely often
    sometimes usually constantly hardly scarcely nearly truly ever""".split()
)
_MODALS = frozenset(
    "can can't cannot could couldn't would wouldn't will won't should might must".split()
)
_IRREGULAR = {  # base -> (third person singular, past)
    "am": ("is", "was"),
    "are": ("is", "were"),
    "be": ("is", "was"),
    "have": ("has", "had"),
    "do": ("does", "did"),
    "don't": ("doesn't", "didn't"),
    "haven't": ("hasn't", "hadn't"),
    "go": ("goes", "went"),
    "feel": ("feels", "felt"),
    "keep": ("keeps", "kept"),
    "eat": ("eats", "ate"),
    "sleep": ("sleeps", "slept"),
    "wake": ("wakes", "woke"),
    "get": ("gets", "got"),
    "think": ("thinks", "thought"),
    "sit": ("sits", "sat"),
    "lose": ("loses", "lost"),
    "spend": ("spends", "spent"),
    "take": ("takes", "took"),
    "read": ("reads", "read"),
    "forget": ("forgets", "forgot"),
    "make": ("makes", "made"),
    "know": ("knows", "knew"),
    "leave": ("leaves", "left"),
    "run": ("runs", "ran"),
    "come": ("comes", "came"),
    "give": ("gives", "gave"),
    "say": ("says", "said"),
    "tell": ("tells", "told"),
    "see": ("sees", "saw"),
    "bring": ("brings", "brought"),
    "lie": ("lies", "lay"),
    "wring": ("wrings", "wrung"),
    "stand": ("stands", "stood"),
    "stop": ("stops", "stopped"),
    "skip": ("skips", "skipped"),
    "sob": ("sobs", "sobbed"),
    "quit": ("quits", "quit"),
    "put": ("puts", "put"),
    "drop": ("drops", "dropped"),
    "fall": ("falls", "fell"),
    "freeze": ("freezes", "froze"),
    "find": ("finds", "found"),
    "begin": ("begins", "began"),
    "break": ("breaks", "broke"),
    "fight": ("fights", "fought"),
    "shed": ("sheds", "shed"),
    "hit": ("hits", "hit"),
    "weep": ("weeps", "wept"),
}
_REGULAR_VERBS = frozenset(  # for "and <verb>" and present forms away from a subject
    """start lift appeal notice ask hope ruin clear taste work help look seem want need last
    stay call try cry love hate enjoy pace stare wish talk move walk snack binge fidget tap
    wander crawl drift doze toss turn loathe despise blame replay picture imagine bawl twist
    knot gaze haul fiddle squirm plod nibble graze gorge devour trust miss fancy""".split()
)
_VERBS = frozenset(_IRREGULAR) - {"am", "are", "be"} | _REGULAR_VERBS
_PAST_FORMS = frozenset(past for _, past in _IRREGULAR.values()) | frozenset(
    "was were used wrote grew drove dealt redid".split()
)
_TENSE_WORDS = {  # present -> past, wherever they stand
    "am": "was",
    "is": "was",
    "are": "were",
    "has": "had",
    "can": "could",
    "can't": "couldn't",
    "cannot": "could not",
    "will": "would",
    "won't": "wouldn't",
    "don't": "didn't",
    "doesn't": "didn't",
    "isn't": "wasn't",
    "aren't": "weren't",
    "haven't": "hadn't",
    "hasn't": "hadn't",
    "i'm": "I was",
    "i've": "I had",
    "it's": "it was",
    "there's": "there was",
    "that's": "that was",
    "he's": "he was",
    "we're": "we were",
    "they're": "they were",
    "you're": "you were",
    "now": "then",
    "these days": "back then",
    "today": "that day",
    "tonight": "that night",
    "this week": "that week",
    "this month": "that month",
    "this morning": "that morning",
}
_PERSONS = {  # subject -> (object, possessive, reflexive, "I'm", "I've", plural verbs)
    "she": ("her", "her", "herself", "she's", "she's", False),
    "he": ("him", "his", "himself", "he's", "he's", False),
    "they": ("them", "their", "themselves", "they're", "they've", True),
}
_SUBJECT_STARTS = frozenset(
    "i i'm i've i'd my it it's there's nothing everyone we they he she food people".split()
)
_CONNECTORS = (", ", " and ", " because ", " but ")
_PHRASE_STARTS = frozenset(  # words that open a phrase that can move to the front
    "for since every until after before almost without most all".split()
)
_CLAUSE_WORDS = frozenset("i i'm i've like that when because and but".split())
_PRONOUN_ENDS = frozenset("here there it me them him her this that".split())


def content_words(text: str) -> set[str]:
    """Lower-case alphabetic words minus a small stop-word list (for the overlap statistic)."""
    words = re.findall(r"[a-z]+(?:'[a-z]+)*", text.lower())
    return {word for word in words if word not in _STOP_WORDS}


def content_overlap(annotation: str, sentence: str) -> float:
    """The fraction of the annotation's content words that occur in its true sentence."""
    words = content_words(annotation)
    return len(words & content_words(sentence)) / len(words) if words else 0.0


def _proper_words() -> frozenset[str]:
    """Words the templates capitalise mid-sentence (names, places): never lower-cased."""
    found = {v for values in _SLOTS.values() for value in values for v in value.split()}
    blocks = [*_EVIDENCE.values(), *_LOOKALIKE.values(), _FILLER, _HAPPENED]
    found |= {w for block in blocks for line in _lines(block) for w in line.split()[1:]}
    return frozenset(w.strip('.,!?:"') for w in found if w[:1].isupper())


_PROPER = _proper_words()


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0].strip(".,!?:")
    if first == "I" or first.startswith("I'") or first in _PROPER or first[1:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def _capitalize(text: str) -> str:
    """Upper-case the first letter of each sentence."""
    return re.sub(r"(^|[.!?] )([a-z])", lambda m: m[1] + m[2].upper(), text)


def _matched_case(replacement: str, original: str) -> str:
    """The replacement capitalised like the original ("Sad" -> "Down"; not after "GP")."""
    capitalised = original[:1].isupper() and not original[1:2].isupper()
    return replacement[:1].upper() + replacement[1:] if capitalised else replacement


def _clean(sentence: str) -> str:
    """The sentence as an annotator types it: straight quotes, no emoji, one final stop."""
    text = sentence.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.rstrip(" " + "".join(_EMOJI))
    return _capitalize(re.sub(r"\.\.\.$", ".", text))


def _split_end(text: str) -> tuple[str, str]:
    """(body, final punctuation); a closing quote stays with the body: 'says "it will pass"'."""
    body, end, quote = re.fullmatch(r'(.*?)([.!?]*)("?)', text).groups()
    return body + quote, end or "."


def _merge(rng: random.Random, first: str, second: str) -> str:
    """Two sentences joined into one, as a paraphrase that merges them does."""
    body, _ = _split_end(first)
    return body + rng.choice((" and ", ", and ", "; ", " - ")) + _lower_first(second)


def _clause_split(rng: random.Random, body: str) -> tuple[str, str, str] | None:
    """A random (left, connector, right) split with at least two words on each side."""
    cuts = [
        (body[: m.start()], connector, body[m.end() :])
        for connector in _CONNECTORS
        for m in re.finditer(re.escape(connector), body)
    ]
    cuts = [c for c in cuts if len(c[0].split()) >= 2 and len(c[2].split()) >= 2]
    return rng.choice(cuts) if cuts else None


def _starts_clause(text: str) -> bool:
    return text.split(" ", 1)[0].lower() in _SUBJECT_STARTS


def _front_phrase(rng: random.Random, body: str) -> str | None:
    """A closing phrase moved to the front: 'At least once a day, I cry in the bathroom'."""
    words = body.split(" ")
    starts = [
        i
        for i in range(3, len(words) - 1)
        if words[i].lower() in _PHRASE_STARTS
        and len(words) - i <= 6
        and not _PRONOUN_ENDS & {w.lower() for w in words[i:]}  # "... asking for here"
        and words[i - 1].lower() not in _ADVERBS | _PHRASE_STARTS  # "... almost every day"
        and not _CLAUSE_WORDS & {w.lower() for w in words[i + 1 :]}
        and not any("," in w for w in words[i - 1 :])
    ]
    if not starts:
        return None
    i = rng.choice(starts)
    return f"{' '.join(words[i:])}, {_lower_first(' '.join(words[:i]))}"


def _restructure(rng: random.Random, text: str) -> tuple[str, str | None]:
    """Reorder clauses or phrases, keep one clause only, or split the sentence in two:
    (text, op or None)."""
    body, end = _split_end(text)
    fronted = _front_phrase(rng, body)
    cut = _clause_split(rng, body)
    if fronted and (cut is None or rng.random() < 0.5):
        return f"{_capitalize(fronted)}{end}", "reorder"
    if cut is None:
        return text, None
    left, connector, right = cut
    kind = rng.choice(("reorder", "keep_clause", "split"))
    if connector == " because ":
        if kind == "reorder":
            return f"Because {_lower_first(right)}, {_lower_first(left)}{end}", kind
    elif not _starts_clause(right):  # "... and pace the hallway": no clause of its own
        kind = "keep_clause"
    if kind == "reorder":
        glue = ", but " if connector == " but " else connector
        return f"{right}{glue}{_lower_first(left)}{end}", kind
    if kind == "split":
        lead = "But " if connector == " but " else ""
        return f"{left}. {lead}{right}{end}", kind
    whole = len(body.split())
    keep = [left, right] if _starts_clause(right) else [left]
    keep = [part for part in keep if len(part.split()) >= max(3, whole / 2)]
    return (f"{rng.choice(keep)}{end}", kind) if keep else (text, None)


def _drop_fillers(text: str) -> str:
    for pattern, replacement in _FILLERS:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    return text


_SYNONYM_PATTERN = re.compile(
    r"(?<![\w'])("
    + "|".join(re.escape(k) for k in sorted(_SYNONYMS, key=len, reverse=True))
    + r")(?![\w'])",
    re.IGNORECASE,
)


def _substitute(rng: random.Random, text: str, rate: float) -> str:
    """Replace each known word or phrase by a synonym with probability `rate`."""

    def swap(match: re.Match) -> str:
        if rng.random() >= rate:
            return match[0]
        return _matched_case(rng.choice(_SYNONYMS[match[0].lower()]), match[0])

    return _SYNONYM_PATTERN.sub(swap, text)


def _conjugate(verb: str, tense: int) -> str:
    """A base verb in the third person singular (tense 3) or the past (tense 0)."""
    lower = verb.lower()
    if lower in _IRREGULAR:
        return _IRREGULAR[lower][0 if tense == 3 else 1]
    past = lower in _PAST_FORMS or (lower.endswith("ed") and not lower.endswith("eed"))  # "need"
    if past or lower in _MODALS or lower.endswith("'t"):
        return verb
    if tense == 3:
        if lower.endswith(("s", "sh", "ch", "x", "o")):
            return verb + "es"
        return verb[:-1] + "ies" if re.search(r"[^aeiou]y$", lower) else verb + "s"
    if lower.endswith("e"):
        return verb + "d"
    return verb[:-1] + "ied" if re.search(r"[^aeiou]y$", lower) else verb + "ed"


_SUBJECT_VERB = r"(?<![\w'])({subjects})((?: (?:{adverbs}))*) ([a-z']+)"


def _change_verbs(text: str, subjects: str, change) -> str:
    """Apply `change(verb)` to each verb after one of `subjects` (adverbs in between skipped)
    and to a known verb after "and" ("I wake up at 4 and lie there")."""
    adverbs = "|".join(sorted(_ADVERBS))
    pattern = _SUBJECT_VERB.format(subjects=subjects, adverbs=adverbs)
    text = re.sub(pattern, lambda m: f"{m[1]}{m[2]} {change(m[3])}", text)
    pattern = _SUBJECT_VERB.format(subjects="and", adverbs=adverbs)
    return re.sub(
        pattern, lambda m: f"{m[1]}{m[2]} {change(m[3]) if m[3] in _VERBS else m[3]}", text
    )


_PRESENT_TO_PAST = {_conjugate(verb, 3): _conjugate(verb, 0) for verb in _VERBS} | _TENSE_WORDS
_PRESENT_PATTERN = re.compile(
    r"(?<![\w'])("
    + "|".join(sorted(map(re.escape, _PRESENT_TO_PAST), key=len, reverse=True))
    + r")(?![\w'])",
    re.IGNORECASE,
)


def _to_past(text: str) -> str:
    """Present to past tense: 'I feel' -> 'I felt', "I'm" -> 'I was', "can't" -> "couldn't"."""
    text = re.sub(r"(?<![\w'])(I|it|she|he)'(?:ve|s) been", r"\1 had been", text)
    text = _change_verbs(text, "I|we|they|you", lambda verb: _conjugate(verb, 0))
    return _PRESENT_PATTERN.sub(lambda m: _matched_case(_PRESENT_TO_PAST[m[0].lower()], m[0]), text)


def _to_third_person(text: str, subject: str, past: bool) -> str:
    """First to third person: 'I feel' -> 'she feels', 'my' -> 'her', "I'm" -> "she's".
    Verbs agree unless the text is already in the past tense ("I quit" -> "she quit")."""
    obj, possessive, reflexive, am, have, plural = _PERSONS[subject]
    text = re.sub(r"(?<![\w'])I'm(?![\w'])", am, text)
    text = re.sub(r"(?<![\w'])I've(?![\w'])", have, text)
    text = re.sub(r"(?<![\w'])I'(d|ll)(?![\w'])", rf"{subject}'\1", text)
    if plural:
        text = re.sub(r"(?<![\w'])I am(?![\w'])", "I are", text)
        text = re.sub(r"(?<![\w'])I was(?![\w'])", "I were", text)
    elif not past:
        text = _change_verbs(text, "I", lambda verb: _conjugate(verb, 3))
    text = re.sub(r"(?<![\w'])I(?![\w'])", subject, text)
    for first, third in (("myself", reflexive), ("my", possessive), ("me", obj)):
        pattern = rf"(?<![\w']){first}(?![\w'])"
        text = re.sub(pattern, lambda m, t=third: _matched_case(t, m[0]), text, flags=re.I)
    return text


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r" ([,.;!?])", r"\1", text)
    text = re.sub(r",(?=[,.;!?])", "", text)
    return _capitalize(text.lstrip(",; "))


def _length_ok(text: str, sentence: str) -> bool:
    return 0.5 <= len(text.split()) / len(sentence.split()) <= 1.6


def _reword(rng: random.Random, source: str) -> str | None:
    """The sentence with every phrase the synonym table knows replaced and its fillers dropped,
    when that leaves no content word shared with it: the same meaning in other words."""
    text = _substitute(rng, _drop_fillers(source), 1.0)
    return text if not content_words(text) & content_words(source) else None


def _rewrite(
    rng: random.Random, parts: list[str], symptom: str, status: int
) -> tuple[str, list[str]]:
    """One random combination of paraphrase operations on one sentence or a pair to merge:
    (text, the operations that changed it)."""
    ops: list[str] = []

    def step(op: str, changed: str) -> str:
        if changed != text:
            ops.append(op)
        return changed

    text = " ".join(parts)
    rate = _OP_RATES
    reworded = rng.random() < rate["reword"] and _reword(rng, text)
    if reworded:
        text = step("reword", reworded)
    else:
        restructure = rng.random() < rate["restructure"]
        if len(parts) == 2:  # a merged pair is reordered as a whole, never cut
            text = _merge(rng, *(parts[::-1] if restructure else parts))
            ops += ["reorder"] if restructure else []
        elif restructure:
            restructured, op = _restructure(rng, text)
            text = step(op, restructured) if op else text
        if rng.random() < rate["fillers"]:
            text = step("fillers", _drop_fillers(text))
        if rng.random() < rate["synonyms"]:
            text = step("synonyms", _substitute(rng, text, rng.uniform(0.3, 1.0)))
    if rng.random() < rate["tense"]:
        text = step("tense", _to_past(text))
    if rng.random() < rate["person"]:
        subject = rng.choice(sorted(_PERSONS))
        text = step("person", _to_third_person(text, subject, past="tense" in ops))
    return _tidy(text), ops


def _paraphrase(
    rng: random.Random, post: DemoPost, k: int, symptom: str, status: int
) -> tuple[str, int, list[str]]:
    """An annotation rewritten from sentence k (and k+1 when merged): (text, n_sentences, ops).

    Each row draws a target similarity to its true text (difflib ratio, spread over
    _RATIO_BAND around _RATIO_MODE) and keeps, of _CHOICES random combinations of operations,
    the one nearest that target.
    """
    sentences = [post.text[start:end] for start, end in post.spans]
    merged = k + 1 < len(sentences) and rng.random() < _MERGE_RATE
    n = 1 + merged
    true_text = post.text[post.spans[k][0] : post.spans[k + n - 1][1]]
    parts = [_clean(sentence) for sentence in sentences[k : k + n]]
    low, high = _RATIO_BAND
    target = rng.triangular(low, high, _RATIO_MODE)
    scored: list[tuple[float, str, list[str]]] = []
    for _ in range(_MAX_TRIES):
        text, ops = _rewrite(rng, parts, symptom, status)
        if not _length_ok(text, true_text) or text.lower() == true_text.lower():
            continue
        ratio = _close(text, true_text)
        outside = not low <= ratio < high  # in the band beats any distance to the target
        scored.append((outside + abs(ratio - target), text, ["merge", *ops] if merged else ops))
        if len(scored) == _CHOICES:
            break
    if not scored:
        raise RuntimeError(f"no paraphrase found for {post.post_id}_{k}")
    _, text, ops = min(scored)
    return text, n, ops


def _noisy_index(rng: random.Random, k: int, n: int) -> int:
    """The sentence index a paraphrased release would show: mostly k, sometimes 1 or 3-8 off."""
    kind = rng.choices(list(_HINT_WEIGHTS), weights=list(_HINT_WEIGHTS.values()))[0]
    if kind == "exact" or n == 1:
        return k
    if kind == "near":
        return rng.choice([i for i in (k - 1, k + 1) if 0 <= i < n])
    distance = rng.randint(3, 8)
    options = [i for i in (k - distance, k + distance) if 0 <= i < n]
    if not options:  # a short post: anything 3 or more away, else the farthest sentence
        options = [i for i in range(n) if abs(i - k) >= 3] or [0 if k > (n - 1) / 2 else n - 1]
    return rng.choice(options)


def generate_paraphrased_corpus(n_posts: int = 600, seed: int = 0) -> tuple[str, str, str]:
    """(posts_csv, annotations_csv, truth_csv): the demo with paraphrased annotations.

    posts.csv and the rows' post_id, DSM5_symptom, status and explanation are the demo's;
    sentence_text is rewritten from the true sentence and sentence_id is noised. truth.csv gives,
    per annotation row (its 1-based spreadsheet row), the true sentence index, how many
    sentences the annotation covers, their character span in the post and the operations used.
    """
    rng = random.Random(f"paraphrase:{seed}")  # the demo's own rng is left untouched
    posts = demo_posts(n_posts, seed)
    annotations, truth = [], []
    for post in posts:
        for sentence_id, _, symptom, status, why in post.rows:
            k = int(sentence_id.rsplit("_", 1)[1])
            text, n, ops = _paraphrase(rng, post, k, symptom, status)
            shown = f"{post.post_id}_{_noisy_index(rng, k, len(post.spans))}"
            annotations.append([post.post_id, shown, text, symptom, status, why])
            start, end = post.spans[k][0], post.spans[k + n - 1][1]
            truth.append([len(truth) + 2, post.post_id, shown, k, n, start, end, "+".join(ops)])
    return (
        _csv_text(_POSTS_HEADER, [[post.post_id, post.text] for post in posts]),
        _csv_text(_ANNOTATIONS_HEADER, annotations),
        _csv_text(_TRUTH_HEADER, truth),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python data/demo/generate.py", description=__doc__)
    parser.add_argument("out_dir", help="folder for posts.csv and annotations.csv (and truth.csv)")
    parser.add_argument("--posts", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variant",
        choices=("verbatim", "paraphrased"),
        default="verbatim",
        help="paraphrased: annotations rewritten as in the public ReDSM5 release, plus truth.csv",
    )
    args = parser.parse_args(argv)
    if args.posts < 1:
        raise UserError(f"--posts must be >= 1, got {args.posts}")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if args.variant == "paraphrased":
        names = ("posts.csv", "annotations.csv", "truth.csv")
        texts = generate_paraphrased_corpus(args.posts, args.seed)
    else:
        names, texts = ("posts.csv", "annotations.csv"), generate_demo_corpus(args.posts, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in zip(names, texts):
        (out / name).write_text(text, encoding="utf-8", newline="")
    paths = [str(out / name) for name in names]
    print(f"wrote {', '.join(paths[:-1])} and {paths[-1]}")
    return 0


if __name__ == "__main__":
    run_cli(main)
