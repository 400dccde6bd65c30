"""Who did it: the OS account of this process, from its uid (USER and LOGNAME can be set to
anything, so they are never asked)."""

import os
import pwd


def os_account() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"
