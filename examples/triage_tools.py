"""The tools of examples/triage.flow: a keyword classifier whose rules are an input, and the
scorers of its evaluation (see notebooks/10-evaluate-prompts.ipynb and README's Evaluation)."""

#: Words that mark a ticket as a bug report or a feature request; anything else is a question.
rules = {
    "bug": ["crash", "error", "fail", "freez"],
    "feature": ["could you", "please", "would be great", "would help", "could the app"],
}
tone = "friendly"


def classify(ticket, rules):
    """The first label whose words the ticket contains, else 'question'."""
    text = ticket.lower()
    for label, words in rules.items():
        if any(word in text for word in words):
            return label
    return "question"


def bug_found(example, outputs):
    """For a bug report: was it labelled a bug? (Other tickets are not scored.)"""
    if example["label"] != "bug":
        return None
    return outputs["label"] == "bug"


def no_false_alarm(example, outputs):
    """For anything but a bug report: was it kept out of the bug queue?"""
    if example["label"] == "bug":
        return None
    return outputs["label"] != "bug"
