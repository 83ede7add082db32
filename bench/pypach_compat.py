"""Imported before python_pachyderm by the bench scripts' Python snippets.

python-pachyderm 3.1.0 predates Python 3.11, whose enum module expects the
member dicts a class is built from to carry the class name; the client
builds its enums from bare ones. Give them a name.
"""
import enum

if not hasattr(enum._EnumDict(), "_cls_name"):

    class NamedEnumDict(enum._EnumDict):
        def __init__(self):
            super().__init__()
            self._cls_name = None

    enum._EnumDict = NamedEnumDict
