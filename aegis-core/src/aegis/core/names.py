r"""Action names (type, target, agent) as the policy sees them, so look-alikes cannot slip past.

An agent can spell a blocked name so that it *looks* (or, to an executor that normalises text,
*is*) the same while differing by code point: ``del\u200bete_user``, fullwidth
``\uff44\uff45\uff4c\uff45\uff54\uff45_user``, ``' delete_user'``, a Cyrillic ``\u0435`` in
``d\u0435lete_user``. Three nets:

* **Rejected at construction** (``check_name``): control, format, private-use, surrogate and
  unassigned code points (Unicode categories ``C*``), line/paragraph separators, the invisible
  fillers and variation selectors, and whitespace at either end. None of them belongs in a name,
  and an executor that strips them would otherwise run a name the policy never saw.
* **Normalised for matching** (``match_key``): NFKC, then case folding unless the policy is
  case-sensitive (NFKC applies either way). Fullwidth, ligature and other compatibility forms
  therefore meet the glob they imitate, and globs are folded the same way when compiled.
* **Flagged** (``flags``): a name mixing scripts (Latin with Cyrillic, Greek, ...), outside the
  combinations real writing uses (UTS #39 "highly restrictive": Latin with Han and the Japanese
  kana, with Han and Bopomofo, or with Han and Hangul), or keeping stray combining marks after
  NFKC. A flagged name never gets ``auto``: auto rules do not match it and defaults of ``auto``
  become ``approve`` — a human looks at it.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from aegis.errors import ActionError

#: Invisible code points that are not in a ``C*`` category (Hangul fillers, variation
#: selectors, the combining grapheme joiner, Khmer inherent vowels, Mongolian selectors).
_INVISIBLE: Final = frozenset(
    [
        0x034F,
        0x115F,
        0x1160,
        0x17B4,
        0x17B5,
        0x3164,
        0xFFA0,
        *range(0x180B, 0x1810),
        *range(0xFE00, 0xFE10),
        *range(0xE0100, 0xE01F0),
    ]
)
_REJECTED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

_SCRIPT_ALIASES: Final = {"CJK": "HAN", "IDEOGRAPHIC": "HAN"}
#: Script sets real text mixes (besides a single script), per UTS #39 "highly restrictive".
_ALLOWED_MIXES: Final = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def check_name(field: str, value: str) -> None:
    """Raise ``ActionError`` naming ``field`` if ``value`` holds what no name may hold."""
    # The common case, decided without a loop: a printable ASCII name can hold only one kind
    # of whitespace, the space.
    if value.isascii() and value.isprintable() and value[:1] != " " and value[-1:] != " ":
        return
    if value[:1].isspace() or value[-1:].isspace():
        raise ActionError(f"Action.{field} has leading or trailing whitespace: {value!r}")
    for position, char in enumerate(value):
        if ord(char) in _INVISIBLE or unicodedata.category(char) in _REJECTED_CATEGORIES:
            raise ActionError(
                f"Action.{field} contains an invisible or control character"
                f" {_describe(char)} at position {position}: {value!r}"
            )


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def match_key(value: str, case_sensitive: bool) -> str:
    """The form globs are matched against: NFKC, then case-folded unless case-sensitive."""
    if value.isascii():  # ASCII is NFKC-stable and folds like str.lower
        return value if case_sensitive else value.lower()
    normal = unicodedata.normalize("NFKC", value)
    if case_sensitive:
        return normal
    return unicodedata.normalize("NFKC", normal.casefold())


#: Letters that look like Latin ones: the common Cyrillic, Greek and Armenian look-alikes and
#: the Latin small capitals (a short list from Unicode's confusables data, not all of it).
_LOOKALIKES: Final = str.maketrans(
    "\u0430\u0432\u0435\u0433\u0456\u0458\u043a\u043c\u043d\u043e\u0440\u0441"
    "\u0442\u0443\u0445\u0455\u0501\u04cf\u04bb\u051b\u051d\u0410\u0412\u0415"
    "\u0406\u0408\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u0405"
    "\u03bf\u03b1\u03bd\u03b9\u03ba\u03c1\u03c5\u0391\u0392\u0395\u0396\u0397"
    "\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7\u0585\u057d\u0578"
    "\u0570\u1d00\u0299\u1d04\u1d05\u1d07\u0262\u029c\u026a\u1d0a\u1d0b\u029f"
    "\u1d0d\u0274\u1d0f\u1d18\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22"
    "\u0131\u0237\u0251\u0261",
    "aberijkmhopctyxsdlhqwABEIJKMHOPCTXYSoavikpuABEZHIKMNOPTYXouuhabcdeghijklmnoprstuvwyzijag",
)


def skeleton(key: str, case_sensitive: bool) -> str:
    r"""``key`` with diacritics dropped and look-alike letters mapped to Latin ones.

    Matched against every rule that does not say ``auto`` (stricter rules only), so that a
    name an executor might fold onto a blocked one — ``d\u00e9lete_user`` for a tool that
    strips accents, ``d\u0435lete_user`` with a Cyrillic ``\u0435`` — is caught by the rule it
    imitates.
    """
    if key.isascii():
        return key
    bare = "".join(c for c in unicodedata.normalize("NFKD", key) if not unicodedata.combining(c))
    return match_key(bare.translate(_LOOKALIKES), case_sensitive)


def _script(char: str) -> str | None:
    """The script of a letter or digit, from its Unicode name; None for everything else."""
    if char.isascii():
        return "LATIN" if char.isalpha() else None
    category = unicodedata.category(char)
    if category[0] != "L" and category != "Nd":
        return None
    name = unicodedata.name(char, "UNKNOWN")
    word = name.replace("-", " ").split(" ", 1)[0]
    return _SCRIPT_ALIASES.get(word, word)


def scripts(value: str) -> frozenset[str]:
    """The scripts of the letters (and non-ASCII digits) in ``value``."""
    found = {_script(char) for char in value}
    found.discard(None)
    return frozenset(s for s in found if s is not None)


def flags(field: str, value: str) -> tuple[str, ...]:
    """Why ``value`` must not get ``auto`` (empty for an ordinary name)."""
    if value.isascii():
        return ()
    normal = unicodedata.normalize("NFKC", value)
    out: list[str] = []
    found = scripts(normal)
    if len(found) > 1 and not any(found <= mix for mix in _ALLOWED_MIXES):
        out.append(f"{field} mixes scripts ({', '.join(sorted(found))}): {value!r}")
    if any(unicodedata.name(c, "").startswith("COMBINING") for c in normal):
        out.append(f"{field} keeps combining marks after NFKC: {value!r}")
    return tuple(out)
