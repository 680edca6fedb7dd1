"""The staff console's blueprint: every page of it lives under /staff/."""

from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/staff")
