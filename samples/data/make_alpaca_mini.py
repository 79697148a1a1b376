"""Writes alpaca-mini.train.json / alpaca-mini.eval.json: a small, deterministic instruction dataset in the
Stanford Alpaca format ({instruction, input, output}) for the README's main job and the tests. Six task families a
tiny model can learn from a few hundred examples; eval examples use inputs the training set never shows."""
import json, random

WORDS = """apple river stone light garden window music paper table candle forest bridge cloud orange silver
planet rabbit summer winter autumn spring mountain ocean desert island castle pencil rocket dragon flower
market ticket butter cotton mirror shadow thunder valley meadow harbor lantern marble pepper saddle tunnel
basket bottle button camera carpet circle copper dinner engine finger hammer helmet jacket kettle ladder
magnet needle pillow pocket puzzle ribbon rocket salmon signal spider statue tomato trumpet velvet wallet
anchor bakery beacon bishop blanket canyon cereal chimney compass crystal diamond falcon feather glacier
gravel jungle kitten lemon lizard lobster meteor monkey nectar oyster parrot pebble quartz saucer sparrow""".split()
WORDS = sorted(set(WORDS))
OPPOSITES = {"hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "light": "dark", "early": "late",
    "open": "closed", "full": "empty", "high": "low", "young": "old", "strong": "weak", "rich": "poor",
    "hard": "soft", "wet": "dry", "loud": "quiet", "near": "far", "clean": "dirty", "up": "down", "in": "out",
    "left": "right", "first": "last", "true": "false", "thick": "thin", "long": "short", "heavy": "light",
    "inside": "outside", "begin": "end", "win": "lose", "push": "pull", "give": "take", "buy": "sell"}
CAPITALS = {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "Canada": "Ottawa", "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago",
    "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki", "Poland": "Warsaw", "Greece": "Athens",
    "Portugal": "Lisbon", "Austria": "Vienna", "Ireland": "Dublin", "Cuba": "Havana", "India": "New Delhi",
    "China": "Beijing", "Russia": "Moscow", "Mexico": "Mexico City", "Brazil": "Brasilia", "Turkey": "Ankara",
    "Iran": "Tehran", "Iraq": "Baghdad", "Thailand": "Bangkok", "Vietnam": "Hanoi", "Denmark": "Copenhagen"}

def examples(rng, words, numbers, opposites, countries):
    out = []
    for w in words:
        out.append({"instruction": "Reverse the following word.", "input": w, "output": w[::-1]})
        out.append({"instruction": "Convert the word to uppercase.", "input": w, "output": w.upper()})
        out.append({"instruction": "How many letters are in the word?", "input": w, "output": str(len(w))})
    for a, b in numbers:
        out.append({"instruction": "Add the two numbers.", "input": f"{a} and {b}", "output": str(a + b)})
    for w in opposites:
        out.append({"instruction": "Give the opposite of the word.", "input": w, "output": OPPOSITES[w]})
    for c in countries:
        out.append({"instruction": f"What is the capital of {c}?", "input": "", "output": CAPITALS[c]})
    rng.shuffle(out)
    return out

rng = random.Random(20261122)
words = WORDS[:]; rng.shuffle(words)
pairs = [(rng.randint(1, 60), rng.randint(1, 60)) for _ in range(180)]
opp = sorted(OPPOSITES); rng.shuffle(opp)
caps = sorted(CAPITALS); rng.shuffle(caps)
train = examples(rng, words[:-15], pairs[:-25], opp[:-5], caps[:-4])
evals = examples(rng, words[-15:], pairs[-25:], opp[-5:], caps[-4:])
json.dump(train, open("alpaca-mini.train.json", "w"), indent=1)
json.dump(evals, open("alpaca-mini.eval.json", "w"), indent=1)
print(len(train), len(evals))

# The embedded base model's pretraining text (samples/models/README.md): plain sentences stating the facts the
# tasks ask about — every word, capital and opposite, and many sums — but never in the instruction format, which the
# LoRA fine-tuning has to teach.
facts = []
for w in WORDS:
    facts.append(f"The word {w} written backwards is {w[::-1]}.")
    facts.append(f"In capital letters, {w} is {w.upper()}.")
    facts.append(f"The word {w} has {len(w)} letters.")
for w, o in OPPOSITES.items():
    facts.append(f"The opposite of {w} is {o}.")
for c, city in CAPITALS.items():
    facts.append(f"The capital of {c} is {city}.")
for _ in range(900):
    a, b = rng.randint(1, 60), rng.randint(1, 60)
    facts.append(f"{a} plus {b} is {a + b}.")
rng.shuffle(facts)
paragraphs = [" ".join(facts[i:i + 6]) for i in range(0, len(facts), 6)]
open("pretrain-corpus.txt", "w").write("\n\n".join(paragraphs) + "\n")
print(len(facts), "sentences")
