"""The vocabulary every stage shares: the symptom labels of ReDSM5, the default question per
symptom, and the modes that choose questions and no-evidence examples (DESIGN §3).

config (the defaults and their checks), corpus (which labels an annotation may carry) and examples
(how a question is asked) all read these from here, so each is defined once.
"""

from __future__ import annotations

DSM_SYMPTOMS = (
    "DEPRESSED_MOOD",
    "ANHEDONIA",
    "APPETITE_CHANGE",
    "SLEEP_ISSUES",
    "PSYCHOMOTOR",
    "FATIGUE",
    "WORTHLESSNESS",
    "COGNITIVE_ISSUES",
    "SUICIDAL_THOUGHTS",
)
ALL_SYMPTOMS = (*DSM_SYMPTOMS, "SPECIAL_CASE")

# Concise paraphrases of DSM-5 major depressive episode criteria A1-A9 (plus the corpus's
# SPECIAL_CASE label). config.toml carries the same texts where users can edit them.
CRITERIA = {
    "DEPRESSED_MOOD": "Depressed mood most of the day, nearly every day: feeling sad, empty or hopeless.",
    "ANHEDONIA": "Markedly diminished interest or pleasure in all, or almost all, activities.",
    "APPETITE_CHANGE": "Significant weight loss or gain, or a decrease or increase in appetite.",
    "SLEEP_ISSUES": "Insomnia or hypersomnia nearly every day: sleeping too little or too much.",
    "PSYCHOMOTOR": "Psychomotor agitation or retardation: restlessness or being slowed down, observable by others.",
    "FATIGUE": "Fatigue or loss of energy nearly every day.",
    "WORTHLESSNESS": "Feelings of worthlessness or excessive or inappropriate guilt.",
    "COGNITIVE_ISSUES": "Diminished ability to think or concentrate, or indecisiveness.",
    "SUICIDAL_THOUGHTS": "Recurrent thoughts of death, suicidal ideation, a suicide plan or attempt.",
    "SPECIAL_CASE": "Other evidence of depression that fits no single criterion.",
}

QUESTION_MODES = ("criterion", "symptom", "empty")  # data.question
NEGATIVE_MODES = ("none", "annotated", "all")  # data.negatives
# The evidence alignment rules, in the order they are tried (lib.data.align; data.align_rules).
ALIGN_RULES = ("exact", "case_insensitive", "normalized", "fuzzy", "semantic")
