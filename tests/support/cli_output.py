"""Reading what the ``salt-run`` CLI printed."""

import json


def last_document(ret):
    """The runner's return: the last JSON document ``salt-run --out=json`` printed (progress events come first).

    ``ret`` is a salt-factories result or the printed text itself.
    """
    text = (ret if isinstance(ret, str) else ret.stdout).strip()
    decoder, pos, last = json.JSONDecoder(), 0, None
    while pos < len(text):
        last, pos = decoder.raw_decode(text, pos)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return last
