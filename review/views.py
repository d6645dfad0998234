"""Page views for the review app: HTML only; the page reads and writes through the REST API.

The page itself is a shell: `static/review/*.js` fetch everything from `/api/...`, so the view
only renders the template and hands over the few things a script cannot find on its own (the
CSRF token for writes, the URLs it talks to) as data-attributes, because the CSP forbids
inline script.
"""
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


@login_required
@ensure_csrf_cookie
def review_page(request):
    """The clip review page at `/`."""
    return render(request, "review/review.html", {"max_transcript_chars": 2000})
