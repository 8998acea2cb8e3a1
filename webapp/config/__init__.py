"""The service's configuration: each setting declared once, parsed, checked and documented.

``fields`` says how a setting is declared (variable, default, parser, help, secrecy);
``parsers`` turn a variable's text into a typed value; ``service``, ``remote``,
``stores`` and ``ratelimit`` declare the settings of each seam; ``settings`` composes
them into the one ``Settings`` object and loads it; ``checks`` holds every check that
reads more than one setting; ``table`` renders the README's configuration table.
"""
