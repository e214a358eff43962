"""The benign users of the outside LLM range (tests/llm_range_outside.py).

Ordinary customers (some in other languages, some sharing their own contact details or asking
for their IBAN, some sending content parts) and heavy but honest ones: QA bots replaying
transcripts, users pasting long documents and logs, security-curious users quoting attack
strings, small businesses paying many invoices in one session.
"""

from __future__ import annotations

import json
import random

from tests import llm_range_outside_text as tx
from tests.llm_range_outside import DAY0, Customer, Log, benign_turn, iban


def regular(log: Log, rng: random.Random, n: int) -> None:
    """Ordinary customers; some in other languages, sharing contact details, asking their IBAN."""
    for i in range(n):
        trait = ["plain", "foreign", "own-contact", "own-iban", "parts"][
            0 if i % 10 < 5 else (i % 10) - 5 if i % 10 < 9 else 0
        ]
        k = log.key("benign", "customer", trait)
        c = Customer.make(rng)
        for _ in range(rng.randint(1, 4)):
            s = log.session(k, DAY0 + rng.uniform(0, 12 * 3600), parts=trait == "parts")
            for _ in range(rng.randint(1, 4)):
                benign_turn(s, c, rng, foreign=trait == "foreign")
            if trait == "own-contact" and rng.random() < 0.7:
                s.ask(
                    f"Please update my e-mail to {c.email} and my mobile to {c.phone}",
                    f"Done: your e-mail is now {c.email} and your mobile {c.phone}.",
                )
            if trait == "own-iban":
                s.ask(
                    "what's my IBAN? my employer needs it",
                    f"Your IBAN is {c.iban}. The phone number on file is {c.phone}.",
                    [
                        (
                            "get_balance",
                            {"account_id": c.account},
                            json.dumps({"iban": c.iban, "phone": c.phone}),
                        )
                    ],
                )


def heavy(log: Log, rng: random.Random) -> None:
    """Heavy but honest: QA replay bots, long documents and logs, security-curious, a business."""
    for b in range(2):
        k = log.key("benign", "heavy", "qa-replay-bot")
        for j in range(350):
            s = log.session(k, DAY0 + 3600 + j * 100 + rng.uniform(0, 40))
            c = Customer.make(rng)
            for _ in range(rng.randint(1, 3)):
                benign_turn(s, c, rng, foreign=j % 7 == b)
    for _ in range(8):
        k = log.key("benign", "heavy", "long-document")
        for _ in range(rng.randint(1, 2)):
            s = log.session(k, DAY0 + rng.uniform(0, 11 * 3600))
            ask = rng.choice(tx.LONG_DOC_ASKS)
            doc = long_doc(rng, "export" in ask, rng.randint(12_000, 35_000))
            s.ask(ask.format(doc=doc), "Summary: " + doc[:400], think=rng.uniform(120, 360))
            for _ in range(rng.randint(1, 3)):
                s.ask(
                    "And what does that mean for me in practice?",
                    "In short: " + doc[500:900],
                    think=rng.uniform(120, 360),
                )
    for _ in range(15):
        k = log.key("benign", "heavy", "security-curious")
        c = Customer.make(rng)
        s = log.session(k, DAY0 + rng.uniform(0, 12 * 3600))
        benign_turn(s, c, rng)
        for q in rng.sample(tx.SECURITY_QUESTIONS, rng.randint(1, 3)):
            s.ask(q, rng.choice(tx.SECURITY_ANSWERS))
    for _ in range(3):
        k = log.key("benign", "heavy", "business-payer")
        c = Customer.make(rng)
        s = log.session(k, DAY0 + rng.uniform(0, 10 * 3600))
        for n in range(rng.randint(12, 20)):
            to = iban(rng, bank="BARC")
            amt = round(rng.uniform(50, 1000), 2)
            s.ask(
                f"Pay invoice INV-{n:03d}: {amt} GBP to {to}",
                f"Paid INV-{n:03d}.",
                [
                    (
                        "transfer_funds",
                        {"to_iban": to, "amount": amt, "reference": f"INV-{n:03d}"},
                        json.dumps({"status": "ok"}),
                    )
                ],
                think=rng.uniform(20, 60),
            )


def long_doc(rng: random.Random, log_lines: bool, n_tokens: int) -> str:
    out: list[str] = []
    size = 0
    while size < n_tokens * 4:
        if log_lines:
            line = tx.LOG_LINE.format(
                d=rng.randint(1, 28),
                h=rng.randint(0, 23),
                m=rng.randint(0, 59),
                r=len(out),
                payee=rng.choice(["ACME Ltd", "Tesco", "HMRC"]),
                amt=rng.randint(1, 900),
                st=rng.choice(["ok", "ok", "ERROR bad date"]),
                note=rng.choice(["", "retry", "duplicate?"]),
            )
        else:
            line = tx.DOC_SENTENCE.format(n=len(out) + 1, p=rng.choice([1, 2, 3, 5]))
        out.append(line)
        size += len(line)
    return "".join(out)
