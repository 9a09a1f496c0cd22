"""Synthetic mixed-format corpus for ingestion benchmarks.

The corpus imitates a small organisation's document dump: a markdown wiki, plain-text
notes, a crawled HTML site (with navigation, footer and script boilerplate) and a few
PDF reports.  Everything is generated from a seeded :class:`random.Random`, so the
same ``(documents, seed)`` pair always produces byte-identical files.

Usage::

    python -m benchmarks.corpus DIR --documents 1000 [--seed 0]

The PDFs are written by :func:`make_text_pdf`, a tiny dependency-free writer that
emits raw PDF syntax (one page object and one content stream per page, the standard
Helvetica Type1 font, an xref table with exact byte offsets).
"""

from __future__ import annotations

import argparse
import html
import math
import random
import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FORMAT_MIX", "TOPICS", "generate_corpus", "make_text_pdf"]

# --------------------------------------------------------------------------------------
# PDF writer
# --------------------------------------------------------------------------------------

PDF_LINE_WIDTH = 90
"""Characters per line before :func:`make_text_pdf` wraps text."""

PDF_LINES_PER_PAGE = 48
"""Lines that fit between y=760 and the bottom margin at 14pt leading."""

_PDF_ESCAPES = {ord("\\"): "\\\\", ord("("): "\\(", ord(")"): "\\)"}


def _pdf_clean(text: str) -> str:
    """Map ``text`` onto characters the WinAnsi-encoded Helvetica can show.

    Line breaks are kept, tabs become spaces; other control characters and anything
    outside latin-1 become ``?``.
    """
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\r\n":
            out.append(ch)
        elif ch == "\t":
            out.append(" ")
        elif code < 0x20 or 0x7F <= code <= 0x9F or code > 0xFF:
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def _wrap(text: str, width: int) -> list[str]:
    """Wrap every line of ``text`` to ``width`` characters; blank lines are kept."""
    lines: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            lines.append("")
            continue
        lines.extend(
            textwrap.wrap(
                raw,
                width=width,
                break_on_hyphens=False,
                replace_whitespace=True,
                drop_whitespace=True,
            )
        )
    return lines


def _pdf_literal(line: str) -> str:
    """A PDF literal string for an already-cleaned latin-1 line (ASCII-only output)."""
    escaped = line.translate(_PDF_ESCAPES)
    if escaped.isascii():
        return f"({escaped})"
    return "(" + "".join(c if ord(c) < 0x80 else f"\\{ord(c):03o}" for c in escaped) + ")"


def _pdf_text_string(value: str) -> str:
    """A PDF text string for metadata: a literal when ASCII, else UTF-16BE hex."""
    if value.isascii() and value.isprintable():
        return "(" + value.translate(_PDF_ESCAPES) + ")"
    return "<FEFF" + value.encode("utf-16-be").hex().upper() + ">"


def make_text_pdf(pages: list[str], title: str | None = None) -> bytes:
    """Build a minimal but valid PDF whose page ``i`` shows the text ``pages[i]``.

    Each page string is split into lines, every line wrapped at about 90 characters,
    and drawn top-down in 11pt Helvetica with 14pt leading, so roughly 48 lines fit on
    a US-letter page; callers paginate longer text themselves (extra lines run past
    the bottom margin but are still extractable).  Only latin-1 text survives: other
    characters are replaced by ``?``.  ``title`` goes into the document /Info dict.

    The output is deterministic (no dates or random IDs) and ASCII apart from the
    customary binary-marker comment on the second line.
    """
    objects: list[bytes] = []  # objects[k] is object number k + 1

    def add(body: str) -> int:
        objects.append(body.encode("latin-1"))
        return len(objects)

    catalog = add("<< /Type /Catalog /Pages 2 0 R >>")
    pages_obj = add("")  # placeholder, filled in once the kids are known
    font = add(
        "<< /Type /Font /Subtype /Type1 /Name /F1 /BaseFont /Helvetica "
        "/Encoding /WinAnsiEncoding >>"
    )
    info = None
    if title is not None:
        info = add(
            f"<< /Title {_pdf_text_string(title)} /Producer (ingest_assets benchmarks.corpus) >>"
        )

    kids: list[int] = []
    for page_text in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        ops.extend(
            f"{_pdf_literal(line)} Tj T*" if line else "T*"
            for line in _wrap(_pdf_clean(page_text), PDF_LINE_WIDTH)
        )
        ops.append("ET")
        stream = "\n".join(ops) + "\n"
        content = add(f"<< /Length {len(stream)} >>\nstream\n{stream}endstream")
        kids.append(
            add(
                f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
            )
        )
    kid_refs = " ".join(f"{k} 0 R" for k in kids)
    objects[pages_obj - 1] = f"<< /Type /Pages /Kids [{kid_refs}] /Count {len(kids)} >>".encode(
        "latin-1"
    )

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode()
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    trailer = f"/Size {len(objects) + 1} /Root {catalog} 0 R"
    if info is not None:
        trailer += f" /Info {info} 0 R"
    out += f"trailer\n<< {trailer} >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)


# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    """Vocabulary for one subject area.

    ``terms`` fill the ``{a}``/``{b}``/``{c}`` slots of ``sentences`` and of the shared
    templates below; ``{n}`` is a small number and ``{y}`` a year.
    """

    name: str
    category: str
    terms: tuple[str, ...]
    titles: tuple[str, ...]
    sentences: tuple[str, ...]
    years: tuple[int, int] = (1950, 2023)


def _terms(text: str) -> tuple[str, ...]:
    return tuple(term.strip() for term in text.split(","))


TOPICS: tuple[Topic, ...] = (
    Topic(
        "astronomy",
        "science",
        _terms(
            "telescope, eyepiece, nebula, star cluster, red giant, light curve, equatorial mount,"
            " star chart, planetary transit, meteor shower, spectrograph, binary star, dark sky "
            "site, lunar terminator"
        ),
        (
            "Observing the {a} from a backyard",
            "A field guide to the {a}",
            "What the {a} tells us about the sky",
        ),
        (
            "On a moonless night the {a} is easy to find once your eyes have adapted to the dark.",
            "Most amateur observers start with a modest {a} before they invest in a {b}.",
            "The {a} drifts across the field of view unless the {b} is aligned to the pole.",
            "Astronomers recorded the {a} in {y} and have followed it closely ever since.",
            "A {a} that brightens by {n} percent in a few hours is worth reporting.",
            "Light pollution washes out the {a} long before it affects the brighter planets.",
            "Seeing and transparency decide how much detail the {a} will show on a given night.",
            "A red torch and a printed {a} are still the most reliable tools at the eyepiece.",
            "Sketching the {a} trains the eye to notice faint structure that photos exaggerate.",
            "The {a} and the {b} are both visible from a {c} in late autumn.",
            "Jupiter's moons shift from hour to hour and make a fine target next to the {a}.",
            "A cheap pair of binoculars shows more of the {a} than most people expect.",
            "Log the time, the instrument and the sky conditions for every look at the {a}.",
            "Photographs of the {a} need long exposures and a mount that tracks accurately.",
        ),
        years=(1780, 2023),
    ),
    Topic(
        "cooking",
        "home",
        _terms(
            "cast iron pan, stock, roux, braise, marinade, chef's knife, dough, reduction, spice "
            "blend, béchamel, sauté, vinaigrette, oven thermometer, pickling brine"
        ),
        (
            "Weeknight cooking with a {a}",
            "Getting the {a} right",
            "A practical guide to the {a}",
        ),
        (
            "A good {a} rewards patience more than expensive ingredients.",
            "Season the {a} early, then taste again just before serving.",
            "If the {a} starts to catch, lower the heat and add a splash of water.",
            "Most recipes overestimate how much salt the {a} really needs.",
            "Let the {a} rest for {n} minutes so the juices settle before you slice it.",
            "A sharp {a} is safer than a dull one because it does not slip.",
            "The {a} keeps for about {n} days in the fridge if it is covered well.",
            "Toasting the {a} in a dry pan brings out aromas that raw spices never have.",
            "The {a} thickens as it cools, so stop cooking it a little early.",
            "Pair the {a} with a {b} and a simple green salad for an easy dinner.",
            "Prepare every ingredient for the {a} before the pan goes on the heat.",
            "Leftover {a} often tastes better the next day once the flavours have mingled.",
            "Add acid at the end: a squeeze of lemon lifts a heavy {a} immediately.",
            "Keep a small notebook of what worked with the {a} and what did not.",
        ),
        years=(1950, 2023),
    ),
    Topic(
        "gardening",
        "home",
        _terms(
            "compost heap, raised bed, seedling, mulch, perennial border, soil test, cold frame, "
            "drip line, cover crop, pruning saw, rootstock, greenhouse, leaf mould, crop rotation"
        ),
        (
            "Planning the {a} for next season",
            "Notes from the {a}",
            "How to look after the {a}",
        ),
        (
            "Water the {a} deeply once a week rather than a little every evening.",
            "A thick layer of {a} keeps moisture in and weeds down through the summer.",
            "Harden off each {a} for {n} days before planting it outside.",
            "The {a} needs at least six hours of direct sun to fruit well.",
            "Slugs find the {a} first, so check it at dusk after rain.",
            "Turn the {a} every few weeks so the middle does not go sour.",
            "A simple {a} every spring saves money on fertiliser you do not need.",
            "Autumn is the best time to move the {a} while the ground is still warm.",
            "Old gardeners swear by a {a} next to the {b}, and they are usually right.",
            "The {a} was first laid out in {y} and has been reworked every decade since.",
            "Label every {a} when you plant it; by midsummer you will have forgotten.",
            "A light frost rarely harms the {a}, but a hard one can kill it outright.",
            "Rainwater from a butt is kinder to the {a} than hard tap water.",
            "Spread the {a} in autumn and let the worms do the digging over winter.",
        ),
        years=(1900, 2023),
    ),
    Topic(
        "networking",
        "technology",
        _terms(
            "router, subnet, VLAN, DNS resolver, TCP handshake, firewall rule, load balancer, "
            "MTU, BGP session, packet capture, TLS certificate, default gateway, NAT table, "
            "switch port"
        ),
        (
            "Troubleshooting the {a}",
            "Designing around the {a}",
            "Runbook: when the {a} misbehaves",
        ),
        (
            "When latency spikes, check the {a} before blaming the application.",
            "A mismatched {a} causes large transfers to stall while small requests succeed.",
            "Every {a} should be documented with its owner and the reason it exists.",
            "The {a} drops about {n} percent of packets when the uplink is saturated.",
            "A quick {a} usually shows whether the problem is on our side or upstream.",
            "Renew the {a} well before it expires; browsers give no grace period.",
            "Traffic between the {a} and the {b} should never cross the public internet.",
            "The {a} was replaced in {y} after a firmware bug corrupted its tables.",
            "Keep the {a} simple: clever exceptions are what break at three in the morning.",
            "If the {a} flaps, look at the {b} logs for the same timestamp.",
            "Change one {a} at a time and keep a rollback plan ready.",
            "Monitoring should alert on the {a} before customers notice anything.",
            "Label both ends of every cable that feeds the {a}.",
            "A stale {a} sends traffic to a host that no longer exists.",
        ),
        years=(1985, 2024),
    ),
    Topic(
        "finance",
        "business",
        _terms(
            "balance sheet, cash flow, index fund, bond ladder, interest rate, expense ratio, "
            "emergency fund, dividend, budget, capital gain, pension, inflation, mortgage, annual"
            " report"
        ),
        (
            "Understanding the {a}",
            "A plain-English note on the {a}",
            "Quarterly review: the {a}",
        ),
        (
            "A low {a} compounds into a surprisingly large saving over twenty years.",
            "The {a} looks healthy on paper, but the {b} tells a more cautious story.",
            "Rebalancing once a year keeps the {a} close to its target without much effort.",
            "Most households should build an {a} worth about {n} months of expenses.",
            "A rising {a} erodes the real value of cash held for the long term.",
            "The {a} was restated in {y} after an error in the depreciation schedule.",
            "Fees on the {a} are small each year but add up over a working life.",
            "Compare the {a} with last year before drawing conclusions from a single quarter.",
            "Paying down the {a} early is a guaranteed return equal to its rate.",
            "The {a} and the {b} should be reviewed together, not in isolation.",
            "Automating contributions to the {a} removes the temptation to time the market.",
            "The {a} is only as useful as the assumptions behind it.",
            "Read the notes to the {a}; the interesting details are rarely in the headlines.",
            "A diversified {a} rises less in good years and falls less in bad ones.",
        ),
        years=(1950, 2024),
    ),
    Topic(
        "medicine",
        "science",
        _terms(
            "blood pressure, clinical trial, immune response, dosage, antibiotic, heart rate, "
            "diagnosis, side effect, vaccine, placebo group, blood test, triage nurse, chronic "
            "pain, physiotherapy"
        ),
        (
            "Patient information: the {a}",
            "What to expect from a {a}",
            "Clinical notes on the {a}",
        ),
        (
            "The {a} should be checked at the same time each day for a fair comparison.",
            "A single reading of the {a} says little; the trend over weeks matters more.",
            "Tell the doctor about any {a} even if it seems unrelated.",
            "The {a} enrolled {n} hundred volunteers and ran for two years.",
            "Finishing the full course of the {a} helps prevent resistance.",
            "Guidelines for the {a} were revised in {y} after new evidence emerged.",
            "The {a} is usually mild and fades within a few days.",
            "Regular {a} speeds recovery more than rest alone for most back problems.",
            "Results from the {a} are compared with the {b} to rule out chance.",
            "A raised {a} on its own is not a reason to panic, but it is worth a follow-up.",
            "Bring a list of current medicines to every appointment about the {a}.",
            "The {a} is reviewed again after {n} weeks to see whether it is working.",
            "Most people tolerate the {a} well, but a small minority need an alternative.",
            "Ask the pharmacist if the {a} interacts with anything you already take.",
        ),
        years=(1950, 2024),
    ),
    Topic(
        "history",
        "humanities",
        _terms(
            "archive, treaty, guild, parish register, trade route, monastery, printing shop, "
            "harbour town, census, city charter, manuscript, market square, railway company, "
            "county record office"
        ),
        (
            "A short history of the {a}",
            "The {a} through the centuries",
            "Reading the {a} as a historian",
        ),
        (
            "The {a} survived only because a clerk copied it before the fire of {y}.",
            "Historians still argue about who actually drafted the {a}.",
            "Every {a} reflects the concerns of the people who paid for it.",
            "By {y} the {a} had become the centre of local life.",
            "Records from the {a} show that prices rose by {n} percent in a single decade.",
            "The {a} and the {b} were rivals for most of the period.",
            "Much of what we know comes from letters kept in the {a}.",
            "The decline of the {a} was gradual rather than sudden.",
            "Travellers describe the {a} as crowded, noisy and surprisingly prosperous.",
            "A careful reading of the {a} reveals who was left out of the official story.",
            "Spelling in the {a} was inconsistent, so names appear in several forms.",
            "The {a} was rebuilt after a flood and moved a short distance inland.",
            "Wills and inventories give a vivid picture of daily life around the {a}.",
            "Local legend credits the {a} to a single founder, but the evidence is thin.",
        ),
        years=(1450, 1930),
    ),
    Topic(
        "music",
        "leisure",
        _terms(
            "chord progression, metronome, scale, string quartet, rehearsal, time signature, bass"
            " line, harmony, sight-reading, concert hall, fingering, tuning fork, phrase, "
            "practice routine"
        ),
        (
            "Practising the {a}",
            "Notes on the {a}",
            "Why the {a} matters to players",
        ),
        (
            "Slow practice with a {a} fixes more mistakes than fast repetition.",
            "The {a} sounds richer when the inner voices are balanced carefully.",
            "A daily {a} of {n} minutes beats a long session once a week.",
            "The {a} shifts halfway through, which catches many players out.",
            "Listen to the {a} first, then look at the score.",
            "The piece premiered in {y} and the {a} was revised twice afterwards.",
            "Good {a} comes from reading a little every day, not from talent.",
            "The {a} supports the melody without competing with it.",
            "Record the {a} and listen back; the ear is kinder in the moment.",
            "The {a} and the {b} should be worked on together from the start.",
            "Mark the breathing points in the {a} before the first rehearsal.",
            "Playing the {a} with the recording helps with style but not with rhythm.",
            "The {a} becomes easier once the hands learn it separately.",
            "Dynamics give the {a} shape; without them even accurate notes sound flat.",
        ),
        years=(1700, 2023),
    ),
    Topic(
        "databases",
        "technology",
        _terms(
            "query planner, index, transaction, write-ahead log, replica, schema migration, "
            "connection pool, foreign key, vacuum, materialized view, primary key, isolation "
            "level, backup, partition"
        ),
        (
            "Operating the {a} in production",
            "Performance notes: the {a}",
            "Design review of the {a}",
        ),
        (
            "The {a} chooses a sequential scan when the table statistics are stale.",
            "A missing {a} turns a millisecond lookup into a full table scan.",
            "Keep each {a} short so locks are released quickly.",
            "The {a} fell about {n} seconds behind during the nightly batch job.",
            "Test every {a} against a copy of production data before running it live.",
            "An untested {a} is only a hope, not a recovery plan.",
            "The {a} was introduced in {y} when the orders table outgrew a single disk.",
            "Size the {a} to the number of cores rather than the number of clients.",
            "A stricter {a} prevents anomalies but increases the chance of retries.",
            "Monitor the {a} and the {b} together, because one usually explains the other.",
            "Read the execution plan before adding yet another {a}.",
            "The {a} grew by {n} gigabytes in a month after the new feature launched.",
            "Restore the {a} into a scratch environment every quarter to prove it works.",
            "Long-running reports should read from the {a}, not from the primary.",
        ),
        years=(1975, 2024),
    ),
    Topic(
        "sailing",
        "leisure",
        _terms(
            "mainsail, jib, tiller, mooring, tide table, reef point, anchor, keel, harbour chart,"
            " VHF radio, life jacket, headsail sheet, close-hauled course, sea breeze"
        ),
        (
            "Seamanship basics: the {a}",
            "Before you cast off: the {a}",
            "Log book notes on the {a}",
        ),
        (
            "Reef the {a} early; it is always harder once the wind has built.",
            "Check the {a} before leaving, not when the current is already against you.",
            "The {a} held through a night of {n} knot gusts without dragging.",
            "Ease the {a} slightly and the boat will stop fighting the helm.",
            "Wear the {a} whenever you leave the cockpit, whatever the forecast says.",
            "The old {a} dates from {y} but the soundings are still broadly right.",
            "A steady {a} usually fills in by early afternoon on summer days.",
            "Keep the {a} within reach and tell someone ashore your plan.",
            "The {a} and the {b} must be adjusted together to keep the boat balanced.",
            "Practise picking up the {a} under sail before you need to do it for real.",
            "Wind against tide turns a pleasant {a} into short, steep waves.",
            "Go through the {a} checklist at the dock, where mistakes are cheap.",
            "The {a} needs inspecting every spring for chafe and corrosion.",
            "Listen to the shipping forecast before you commit to the {a}.",
        ),
        years=(1850, 2024),
    ),
    Topic(
        "chess",
        "leisure",
        _terms(
            "opening, endgame, pawn structure, bishop pair, king safety, tempo, fork, pin, "
            "middlegame plan, rook on the seventh rank, passed pawn, tournament game, time "
            "control, knight outpost"
        ),
        (
            "Improving your {a}",
            "Lessons from the {a}",
            "A club player's guide to the {a}",
        ),
        (
            "A sound {a} matters more than memorising long lines of theory.",
            "Every {a} should be converted with simple, safe moves.",
            "Losing a {a} in the opening usually means losing the initiative.",
            "The {a} decided the game after {n} moves of careful manoeuvring.",
            "Look for a {a} whenever two enemy pieces stand on the same line.",
            "The famous {a} from {y} is still studied by club players.",
            "A weak {a} becomes a long-term target for the opponent's pieces.",
            "Calculate forcing moves first: checks, captures and threats.",
            "The {a} and the {b} often work together in the attack.",
            "Review each {a} with an engine only after forming your own opinion.",
            "A knight on the rim is dim, but the {a} can justify it.",
            "Trading pieces helps the side with the better {a}.",
            "Most club games are decided by tactics long before the {a} matters.",
            "Write down the candidate moves before committing to the {a}.",
        ),
        years=(1850, 2024),
    ),
    Topic(
        "geology",
        "science",
        _terms(
            "sedimentary layer, fault line, igneous intrusion, fossil bed, mineral vein, glacial "
            "valley, volcanic ash, rock outcrop, groundwater table, limestone cave, river "
            "terrace, core sample, tectonic plate, erosion rate"
        ),
        (
            "Field notes on the {a}",
            "Reading the {a}",
            "How the {a} formed",
        ),
        (
            "The {a} records millions of years of slow deposition.",
            "A fresh {a} shows the original colour before weathering dulls it.",
            "The {a} moves only a few centimetres a year, about as fast as fingernails grow.",
            "Drilling reached the {a} at a depth of {n} hundred metres.",
            "The {a} was first mapped in {y} by a survey team on foot.",
            "Water seeping through the {a} slowly dissolves the surrounding rock.",
            "Geologists date the {a} by comparing it with the {b} beneath it.",
            "A hand lens and a notebook are enough to describe most of the {a}.",
            "The {a} cuts across older rocks, so it must be younger than them.",
            "Landslides are common where the {a} meets soft clay.",
            "Ripple marks in the {a} show which way the ancient current flowed.",
            "The {a} weathers into rounded boulders that litter the hillside.",
            "Always get permission before hammering at the {a} on private land.",
            "A thin band of clay in the {a} marks a sudden change in climate.",
        ),
        years=(1830, 2024),
    ),
    Topic(
        "photography",
        "leisure",
        _terms(
            "aperture, shutter speed, prime lens, tripod, exposure, white balance, histogram, "
            "depth of field, golden hour, raw file, light meter, sensor, composition, flash"
        ),
        (
            "Better pictures with the {a}",
            "Understanding the {a}",
            "Workshop notes: the {a}",
        ),
        (
            "A wider {a} blurs the background and isolates the subject.",
            "Check the {a} instead of trusting the bright screen outdoors.",
            "A sturdy {a} makes long exposures at dusk possible.",
            "Shooting at ISO {n}00 keeps noise low enough for most prints.",
            "The {a} lasts only a short while, so arrive early and wait.",
            "Editing the {a} later recovers detail a JPEG would have thrown away.",
            "The {a} fools the camera when the scene is mostly snow or sand.",
            "Simple {a} beats clever effects in almost every portrait.",
            "The {a} and the {b} trade off against each other in low light.",
            "The camera was released in {y} and its {a} is still respected today.",
            "Move your feet before reaching for the zoom; the {a} changes with distance.",
            "Back up the {a} in two places before formatting the card.",
            "Overcast days are kind to the {a} because the light is soft and even.",
            "The {a} makes more difference than the camera body for most pictures.",
        ),
        years=(1900, 2024),
    ),
    Topic(
        "cycling",
        "leisure",
        _terms(
            "chain, derailleur, cassette, brake pad, tyre pressure, saddle height, inner tube, "
            "gear ratio, cadence, crankset, hub, spoke tension, commuter route, puncture kit"
        ),
        (
            "Maintaining the {a}",
            "A cyclist's guide to the {a}",
            "Workshop day: the {a}",
        ),
        (
            "A clean, lightly oiled {a} shifts more smoothly and lasts longer.",
            "Set the {a} so the knee is only slightly bent at the bottom of the stroke.",
            "Check the {a} every week; most riders run it far too low.",
            "A steady {a} of about {n} revolutions a minute is easier on the knees.",
            "Carry a {a} and a spare inner tube on every longer ride.",
            "The {a} wears faster in winter when the roads are gritty.",
            "Adjust the {a} a quarter turn at a time and test after each change.",
            "The {a} on this model was redesigned in {y} to save weight.",
            "The {a} and the {b} wear together, so replace them as a set.",
            "A quieter {a} is often worth a few extra minutes of travel.",
            "Listen for new noises; the {a} usually warns you before it fails.",
            "A proper fitting of the {a} prevents most aches on long rides.",
            "Mudguards keep the {a} cleaner through a wet winter commute.",
            "Torque the {a} bolts to the figure printed on the part, no tighter.",
        ),
        years=(1890, 2024),
    ),
)

_GENERIC_SENTENCES = (
    "It is worth comparing the {a} with the {b} before drawing any conclusions.",
    "Many beginners underestimate how much the {a} depends on the {b}.",
    "In practice, the {a} matters more than most guides suggest.",
    "A common mistake is to treat the {a} and the {b} as if they were interchangeable.",
    "Experienced people keep careful notes about every {a} they work with.",
    "There is no single right answer here; the {a} depends on circumstances.",
    "We revisited the {a} after feedback from the last review.",
    "The {a} is covered in more detail in the appendix.",
    "None of this is complicated, but the {a} rewards attention to detail.",
    "The short version: look after the {a} and the {b} will mostly look after itself.",
    "Several readers asked about the {a}, so this section answers the common questions.",
    "Write down what you changed about the {a} and why, so you can undo it later.",
    "Costs for the {a} rose by roughly {n} percent compared with the previous year.",
    "Nobody gets the {a} right the first time, and that is perfectly normal.",
    "The {a} deserves a section of its own, which follows below.",
    "Opinions differ on the {a}, but the evidence points in one direction.",
    "Small, regular attention to the {a} beats occasional heroic effort.",
    "If in doubt, leave the {a} alone and come back to it tomorrow.",
    "The {a} is where most of the surprises come from.",
    "Before changing the {a}, make sure you understand why it was set up that way.",
)

_OPENERS = (
    "In our experience, ",
    "For most people, ",
    "As a rule, ",
    "Generally speaking, ",
    "In short, ",
    "Interestingly, ",
    "Over time, ",
    "Put simply, ",
    "Of course, ",
    "On the other hand, ",
    "Perhaps surprisingly, ",
    "Even so, ",
)

_HEADINGS = (
    "Getting started with the {a}",
    "Why the {a} matters",
    "Common problems with the {a}",
    "The {a} in practice",
    "Choosing a {a}",
    "Notes on the {a}",
    "How the {a} works",
    "Background",
    "A worked example",
    "Checklist",
    "Things to avoid",
    "Further reading",
    "The {a} and the {b}",
    "Questions we are often asked",
    "Summary",
)

_LIST_ITEMS = (
    "Check the {a} regularly",
    "Keep a record of every change to the {a}",
    "Compare the {a} with the {b}",
    "Ask someone experienced to look at the {a}",
    "Do not rush the {a}",
    "Start with the {a} and leave the {b} for later",
    "Budget time for the {a}",
    "Read the notes on the {a} first",
    "Replace the {a} when it shows wear",
    "Review the {a} once a season",
)

_COLLECTIONS = {
    ".md": ("wiki", "handbook"),
    ".txt": ("notes", "archive/notes"),
    ".html": ("site", "site/blog"),
    ".pdf": ("reports", "archive/reports"),
}

_SITE_NAV = ("Home", "Guides", "Blog", "Reference", "About", "Contact")

FORMAT_MIX: dict[str, float] = {".md": 0.45, ".txt": 0.25, ".html": 0.20, ".pdf": 0.10}
"""Fraction of documents per file suffix."""

# Size distribution of a document's text in bytes: a lognormal body (median ~2.8 KB,
# most documents between 1 and 6 KB) plus a small heavy tail of long documents.
_SIZE_MEDIAN = 2800
_SIZE_SIGMA = 0.7
_TAIL_SHARE = 0.04
_TAIL_RANGE = (12_000, 58_000)
_SIZE_RANGE = (300, 60_000)


# --------------------------------------------------------------------------------------
# Text generation
# --------------------------------------------------------------------------------------


_DECLARATIVE = re.compile(r"(The|A|An|Most|Many) ")
_ARTICLE = re.compile(r"\b([Aa])n? (?=(\w))")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _articles(text: str) -> str:
    """Fix "a"/"an" after slot filling ("a aperture" -> "an aperture")."""
    return _ARTICLE.sub(
        lambda m: m.group(1) + ("n " if m.group(2)[0] in "aeiouAEIOU" else " "), text
    )


class _Writer:
    """Produces sentences, headings and list items for one topic."""

    def __init__(self, rng: random.Random, topic: Topic, guest: Topic | None) -> None:
        self.rng = rng
        self.topic = topic
        self.guest = guest
        self._decks: dict[int, list[str]] = {}

    def _draw(self, pool: tuple[str, ...]) -> str:
        """Draw from ``pool`` without replacement, reshuffling once it is exhausted."""
        deck = self._decks.get(id(pool))
        if not deck:
            deck = self._decks[id(pool)] = list(pool)
            self.rng.shuffle(deck)
        return deck.pop()

    def _fill(self, template: str, topic: Topic) -> str:
        rng = self.rng
        a, b, c = rng.sample(topic.terms, 3)
        return _articles(
            template.format(
                a=a,
                b=b,
                c=c,
                n=rng.choice((2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30)),
                y=rng.randint(*topic.years),
            )
        )

    def sentence(self) -> str:
        rng = self.rng
        roll = rng.random()
        if self.guest is not None and roll < 0.06:
            topic, template = self.guest, self._draw(self.guest.sentences)
        elif roll < 0.72:
            topic, template = self.topic, self._draw(self.topic.sentences)
        else:
            topic, template = self.topic, self._draw(_GENERIC_SENTENCES)
        text = self._fill(template, topic)
        if rng.random() < 0.15 and _DECLARATIVE.match(text) and ":" not in text:
            text = rng.choice(_OPENERS) + text[0].lower() + text[1:]
        return _cap(text)

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(2, 6)))

    def heading(self) -> str:
        return _cap(self._fill(self._draw(_HEADINGS), self.topic))

    def title(self) -> str:
        return _cap(self._fill(self.rng.choice(self.topic.titles), self.topic))

    def list_items(self) -> list[str]:
        count = self.rng.randint(3, 6)
        templates = self.rng.sample(_LIST_ITEMS, min(count, len(_LIST_ITEMS)))
        return [_cap(self._fill(t, self.topic)) for t in templates]


Block = tuple[str, str | list[str]]  # ("p", text) | ("ul"/"ol", items)


@dataclass
class _Document:
    title: str
    intro: str
    sections: list[tuple[str, list[Block]]]


def _target_size(rng: random.Random) -> int:
    if rng.random() < _TAIL_SHARE:
        low, high = _TAIL_RANGE
        size = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        size = rng.lognormvariate(math.log(_SIZE_MEDIAN), _SIZE_SIGMA)
    return int(min(max(size, _SIZE_RANGE[0]), _SIZE_RANGE[1]))


def _compose(writer: _Writer, target: int) -> _Document:
    rng = writer.rng
    title = writer.title()
    intro = writer.paragraph()
    size = len(title) + len(intro)
    sections: list[tuple[str, list[Block]]] = []
    while size < target:
        heading = writer.heading()
        blocks: list[Block] = []
        size += len(heading)
        for _ in range(rng.randint(1, 4)):
            if size >= target:
                break
            paragraph = writer.paragraph()
            blocks.append(("p", paragraph))
            size += len(paragraph) + 2
            if rng.random() < 0.2:
                items = writer.list_items()
                blocks.append(("ol" if rng.random() < 0.3 else "ul", items))
                size += sum(len(item) + 3 for item in items)
        if not blocks:
            blocks.append(("p", writer.paragraph()))
        sections.append((heading, blocks))
    return _Document(title, intro, sections)


def _slug(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "document"


# --------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------


def _render_md(doc: _Document, rng: random.Random) -> str:
    out = [f"# {doc.title}", "", doc.intro, ""]
    for heading, blocks in doc.sections:
        out += [f"## {heading}", ""]
        for kind, value in blocks:
            if kind == "p":
                assert isinstance(value, str)
                out += [value, ""]
            else:
                out += [
                    f"{i}. {item}" if kind == "ol" else f"- {item}"
                    for i, item in enumerate(value, start=1)
                ]
                out.append("")
    if rng.random() < 0.3:
        out += ["---", "", f"*Last reviewed in {rng.randint(2019, 2025)}.*", ""]
    return "\n".join(out)


def _render_txt(doc: _Document, rng: random.Random) -> str:
    hard_wrap = rng.random() < 0.5

    def para(text: str) -> str:
        return textwrap.fill(text, width=76) if hard_wrap else text

    out = [doc.title.upper() if rng.random() < 0.3 else doc.title]
    out += ["=" * len(doc.title), "", para(doc.intro), ""]
    for heading, blocks in doc.sections:
        out += [heading, "-" * len(heading), ""]
        for kind, value in blocks:
            if kind == "p":
                assert isinstance(value, str)
                out += [para(value), ""]
            else:
                out += [
                    f"  {i}) {item}" if kind == "ol" else f"  * {item}"
                    for i, item in enumerate(value, start=1)
                ]
                out.append("")
    return "\n".join(out)


def _render_html(doc: _Document, rng: random.Random, site: str) -> str:
    e = html.escape
    nav = "\n".join(f'        <li><a href="/{_slug(name)}/">{name}</a></li>' for name in _SITE_NAV)
    body: list[str] = [f"      <h1>{e(doc.title)}</h1>", f"      <p>{e(doc.intro)}</p>"]
    for heading, blocks in doc.sections:
        body.append(f"      <h2>{e(heading)}</h2>")
        for kind, value in blocks:
            if kind == "p":
                assert isinstance(value, str)
                body.append(f"      <p>{e(value)}</p>")
            else:
                items = "".join(f"<li>{e(item)}</li>" for item in value)
                body.append(f"      <{kind}>{items}</{kind}>")
    year = rng.randint(2018, 2025)
    tracking_id = f"UA-{rng.randint(100000, 999999)}-{rng.randint(1, 9)}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{e(doc.title)} | {e(site)}</title>
  <link rel="stylesheet" href="/static/css/site.css">
  <style>body {{ font-family: Georgia, serif; max-width: 46rem; margin: auto; }}</style>
</head>
<body>
  <header class="site-header">
    <a class="logo" href="/">{e(site)}</a>
    <nav aria-label="Main">
      <ul>
{nav}
      </ul>
    </nav>
  </header>
  <main>
    <article>
{chr(10).join(body)}
    </article>
  </main>
  <aside class="newsletter">
    <p>Subscribe to our newsletter for new guides every month.</p>
  </aside>
  <footer>
    <nav aria-label="Footer"><a href="/privacy/">Privacy</a> · <a href="/terms/">Terms</a></nav>
    <p>&copy; {year} {e(site)}. All rights reserved.</p>
  </footer>
  <script>
    window.dataLayer = window.dataLayer || [];
    function gtag() {{ dataLayer.push(arguments); }}
    gtag("js", new Date());
    gtag("config", "{tracking_id}");
  </script>
</body>
</html>
"""


def _pdf_pages(doc: _Document) -> list[str]:
    lines = [doc.title, "", *_wrap(doc.intro, PDF_LINE_WIDTH), ""]
    for heading, blocks in doc.sections:
        lines += [heading, ""]
        for kind, value in blocks:
            if kind == "p":
                assert isinstance(value, str)
                lines += [*_wrap(value, PDF_LINE_WIDTH), ""]
            else:
                for i, item in enumerate(value, start=1):
                    bullet = f"{i}. " if kind == "ol" else "- "
                    lines += _wrap(bullet + item, PDF_LINE_WIDTH)
                lines.append("")
    pages: list[str] = []
    for start in range(0, len(lines), PDF_LINES_PER_PAGE):
        chunk = lines[start : start + PDF_LINES_PER_PAGE]
        if any(chunk):
            pages.append("\n".join(chunk).strip("\n"))
    return pages or [doc.title]


# --------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------


def _suffix_plan(documents: int, rng: random.Random) -> list[str]:
    """Exactly ``documents`` suffixes in the :data:`FORMAT_MIX` proportions, shuffled."""
    # Integer arithmetic in permille so that e.g. 0.45 * 20 is exactly 9.
    quotas = {suffix: documents * round(share * 1000) for suffix, share in FORMAT_MIX.items()}
    counts = {suffix: quota // 1000 for suffix, quota in quotas.items()}
    leftover = documents - sum(counts.values())
    # Largest remainder first; ties go to the more common format (stable sort).
    for suffix in sorted(quotas, key=lambda s: -(quotas[s] % 1000))[:leftover]:
        counts[suffix] += 1
    plan = [suffix for suffix, count in counts.items() for _ in range(count)]
    rng.shuffle(plan)
    return plan


def _generate(root: Path, documents: int, seed: int) -> tuple[dict[str, int], list[Path]]:
    if documents < 0:
        raise ValueError(f"documents must be >= 0, got {documents}")
    rng = random.Random(seed)
    counts = dict.fromkeys(FORMAT_MIX, 0)
    written: list[Path] = []
    width = max(4, len(str(max(documents - 1, 0))))
    for index, suffix in enumerate(_suffix_plan(documents, rng)):
        topic = rng.choice(TOPICS)
        guest = rng.choice(TOPICS) if rng.random() < 0.3 else None
        writer = _Writer(rng, topic, guest if guest is not topic else None)
        doc = _compose(writer, _target_size(rng))
        folder = root / rng.choice(_COLLECTIONS[suffix]) / topic.category
        path = folder / f"{_slug(doc.title)}-{index:0{width}d}{suffix}"
        if suffix == ".md":
            data = _render_md(doc, rng).encode("utf-8")
        elif suffix == ".txt":
            data = _render_txt(doc, rng).encode("utf-8")
        elif suffix == ".html":
            site = f"{_cap(topic.name)} {rng.choice(('Hub', 'Notes', 'Weekly', 'Guide'))}"
            data = _render_html(doc, rng, site).encode("utf-8")
        else:
            data = make_text_pdf(_pdf_pages(doc), title=doc.title)
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        counts[suffix] += 1
        written.append(path)
    return counts, written


def generate_corpus(root: Path, documents: int, seed: int = 0) -> dict[str, int]:
    """Write ``documents`` synthetic files under ``root`` and return counts per suffix.

    Files land in nested folders such as ``wiki/science/`` or ``site/blog/leisure/``;
    the suffix mix follows :data:`FORMAT_MIX` exactly (largest-remainder rounding),
    text sizes are lognormal (most 1-6 KB, a few up to ~60 KB), and the output is
    byte-identical for the same ``documents`` and ``seed``.  Existing files with the
    same names are overwritten; nothing else under ``root`` is touched.
    """
    counts, _ = _generate(Path(root), documents, seed)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.corpus",
        description="Generate a deterministic mixed-format document corpus.",
    )
    parser.add_argument("root", metavar="DIR", type=Path, help="output directory")
    parser.add_argument("--documents", "-n", type=int, required=True, metavar="N")
    parser.add_argument("--seed", type=int, default=0, metavar="S")
    args = parser.parse_args(argv)
    if args.documents < 0:
        parser.error("--documents must be >= 0")
    started = time.perf_counter()
    counts, written = _generate(args.root, args.documents, args.seed)
    elapsed = time.perf_counter() - started
    total = sum(path.stat().st_size for path in written)
    mix = ", ".join(f"{n} {suffix}" for suffix, n in counts.items())
    print(
        f"wrote {len(written)} documents ({mix}; "
        f"{total / 1e6:.1f} MB) to {args.root} in {elapsed:.2f}s (seed {args.seed})"
    )


if __name__ == "__main__":
    main()
