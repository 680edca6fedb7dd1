"""The staff console's blueprint: every page of it lives under /staff/."""

from flask import Blueprint

URL_PREFIX = "/staff"
bp = Blueprint("staff", __name__, url_prefix=URL_PREFIX)

# A row id in a URL, no larger than an INTEGER column holds, so an absurd id is a 404, not a database error.
ROW_ID = "int(max=2147483647)"
