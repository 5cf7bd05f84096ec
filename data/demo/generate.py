"""The bundled demo corpus: synthetic Reddit-style posts in the exact ReDSM5 file format.

    python data/demo/generate.py OUT_DIR [--posts 600] [--seed 0]

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
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
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


def generate_demo_corpus(n_posts: int = 600, seed: int = 0) -> tuple[str, str]:
    """(posts_csv, annotations_csv) as text, byte-for-byte the same for the same arguments."""
    posts_out, rows_out = io.StringIO(), io.StringIO()
    posts_csv = csv.writer(posts_out, lineterminator="\n")
    rows_csv = csv.writer(rows_out, lineterminator="\n")
    posts_csv.writerow(["post_id", "text"])
    rows_csv.writerow(
        ["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"]
    )
    for post in demo_posts(n_posts, seed):
        posts_csv.writerow([post.post_id, post.text])
        for sentence_id, text, symptom, status, why in post.rows:
            rows_csv.writerow([post.post_id, sentence_id, text, symptom, status, why])
    return posts_out.getvalue(), rows_out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python data/demo/generate.py", description=__doc__)
    parser.add_argument("out_dir", help="folder for posts.csv and annotations.csv")
    parser.add_argument("--posts", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.posts < 1:
        raise UserError(f"--posts must be >= 1, got {args.posts}")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    posts_csv, annotations_csv = generate_demo_corpus(args.posts, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "posts.csv").write_text(posts_csv, encoding="utf-8", newline="")
    (out / "annotations.csv").write_text(annotations_csv, encoding="utf-8", newline="")
    print(f"wrote {out / 'posts.csv'} and {out / 'annotations.csv'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
