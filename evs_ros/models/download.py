"""HTTP(S) file downloads for ``evs weights get`` (design §6): progress, resume, checksum.

Only the explicit ``evs weights get`` command calls this module; nothing else downloads.

A download goes to ``DEST.part``. An interrupted transfer keeps the ``.part`` file and continues
with an HTTP ``Range: bytes=N-`` request, within the same run (``ATTEMPTS`` tries) and in a later
run. Only a file whose checksum matches is renamed to ``DEST``; a mismatch deletes the ``.part``
file, so a refused download leaves nothing behind. Standard library only (``urllib``) plus tqdm.

Google Drive answers a large file's download link with a "can't scan this file for viruses"
page. Its "Download anyway" form (hidden ``id``/``export``/``confirm``/``uuid`` fields; older
pages: a ``confirm=TOKEN`` link and a ``download_warning`` cookie) is followed, with the cookies
the page set (:func:`confirm_url`). Any other web page (sign-in, quota exceeded) and any HTTP error
are refused with the caller's hint (download in a browser, then ``--file``).
"""

import hashlib
import http.client
import http.cookiejar
import os
import sys
from html.parser import HTMLParser
from typing import Dict, List, Optional, Tuple
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, urlencode, urljoin, urlparse, urlsplit, urlunsplit
from urllib.request import HTTPCookieProcessor, Request, build_opener

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0
ATTEMPTS = 3
USER_AGENT = 'evs_ros-weights/1'
CONFIRM_HOPS = 2
PAGE_BYTES = 1 << 20


class DownloadError(ValueError):
    """A download that cannot go on; the message says what to do."""


class OfflineError(DownloadError):
    """The server cannot be reached (no network, refused, DNS) or keeps dropping the transfer."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the published file; nothing was kept."""


class _Interrupted(Exception):
    """The connection ended before the announced length; the ``.part`` file is kept."""


class _ConfirmPage(Exception):
    """The server answered with a confirmation page; ``url`` is where its form leads."""

    def __init__(self, url: str):
        super().__init__(url)
        self.url = url


def file_digest(path: str, algorithm: str = 'sha256') -> str:
    """Hex digest of a file (``sha256`` or ``md5``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b''):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: str, sha256: str = '', md5: str = '', progress: bool = True,
             html_hint: str = '') -> str:
    """Fetch ``url`` into ``dest`` (resuming ``dest.part``), verify it, then rename it.

    Args:
        url: http(s) URL of the file.
        dest: final path; its directory is created.
        sha256: expected hex sha256 ('' = not checked, unless ``md5`` is given).
        md5: expected hex md5, checked when no ``sha256`` is given.
        progress: show a tqdm progress bar on stderr.
        html_hint: what to tell the user when the server answers with an HTML page.

    Returns:
        The sha256 of the file now at ``dest``.

    Raises:
        OfflineError: the server cannot be reached or the transfer keeps breaking.
        ChecksumError: the bytes do not match; ``dest.part`` was deleted.
        DownloadError: any other refusal (HTTP error status, an HTML page instead of the file).
    """
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part_path = f'{dest}.part'
    opener = build_opener(HTTPCookieProcessor(http.cookiejar.CookieJar()))
    last_error: Optional[_Interrupted] = None
    current, hops, attempts = url, 0, 0
    while attempts < ATTEMPTS:
        try:
            _download_once(opener, current, part_path, progress, html_hint, hops < CONFIRM_HOPS)
            break
        except _ConfirmPage as page:
            current, hops = page.url, hops + 1
        except _Interrupted as error:
            last_error, attempts = error, attempts + 1
    else:
        size = os.path.getsize(part_path) if os.path.isfile(part_path) else 0
        raise OfflineError(f'the download of {url} broke off {ATTEMPTS} times ({last_error}); '
                           f'run the same command again to resume from byte {size}')
    verify(part_path, sha256, md5, url)
    os.replace(part_path, dest)
    return file_digest(dest, 'sha256')


def verify(path: str, sha256: str, md5: str, url: str) -> None:
    """Delete ``path`` and raise ``ChecksumError`` unless its digest is the expected one."""
    algorithm, expected = ('sha256', sha256) if sha256 else ('md5', md5)
    if not expected:
        return
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        os.remove(path)
        raise ChecksumError(f'refused {url}: its {algorithm} is {actual}, the catalogue says '
                            f'{expected.lower()}; nothing was kept in the cache (the file changed '
                            'upstream, or the server sent something else)')


def _download_once(opener, url: str, part_path: str, progress: bool, html_hint: str,
                   may_confirm: bool) -> None:
    start = os.path.getsize(part_path) if os.path.isfile(part_path) else 0
    response = _open(opener, url, start, html_hint)
    if response is None:  # 416: the .part file already holds the whole file
        return
    with response:
        if start and response.status != 206:  # the server ignored Range: start over
            start = 0
        if response.headers.get_content_type() == 'text/html':
            page = response.read(PAGE_BYTES).decode('utf-8', 'replace')
            cookies = _cookies(opener)
            follow = confirm_url(page, response.geturl() or url, cookies) if may_confirm else None
            if follow:
                raise _ConfirmPage(follow)
            what = ('a confirmation page that could not be followed' if not may_confirm else
                    'a web page instead of the file (a sign-in or quota page?)')
            raise DownloadError(f'{url} answered with {what}; {html_hint}'.rstrip('; '))
        length = response.headers.get('Content-Length')
        total = start + int(length) if length else None
        with open(part_path, 'ab' if start else 'wb') as stream:
            received = _copy(response, stream, start, total, progress)
    if total is not None and start + received < total:
        raise _Interrupted(f'connection closed after {start + received} of {total} bytes')


def _open(opener, url: str, start: int, hint: str = ''):
    """GET with a Range header when resuming; None when the file is already complete."""
    headers = {'User-Agent': USER_AGENT}
    if start:
        headers['Range'] = f'bytes={start}-'
    try:
        return opener.open(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as error:
        if error.code == 416 and start:
            return None
        raise DownloadError(f'{url} answered HTTP {error.code} {error.reason}; {hint}'
                            .rstrip('; ')) from error
    except (URLError, OSError) as error:
        reason = getattr(error, 'reason', error)
        host = urlparse(url).netloc or url
        raise OfflineError(f'cannot reach {host} ({reason}): this machine is offline or the '
                           'server is down') from error


def _copy(response, stream, start: int, total: Optional[int], progress: bool) -> int:
    """Copy the body into ``stream`` with a progress bar; returns the bytes received."""
    from tqdm import tqdm
    received = 0
    with tqdm(total=total, initial=start, unit='B', unit_scale=True, unit_divisor=1024,
              desc=os.path.basename(stream.name).replace('.part', ''), file=sys.stderr,
              disable=not progress) as bar:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except http.client.IncompleteRead as error:
                stream.write(error.partial)
                raise _Interrupted(f'connection closed after {start + received} bytes') from error
            except (ConnectionError, TimeoutError) as error:
                raise _Interrupted(f'{error}') from error
            if not chunk:
                return received
            stream.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))


def _cookies(opener) -> Dict[str, str]:
    """Name -> value of the cookies the opener's jar holds."""
    for handler in opener.handlers:
        if isinstance(handler, HTTPCookieProcessor):
            return {cookie.name: cookie.value for cookie in handler.cookiejar}
    return {}


class _FormParser(HTMLParser):
    """The forms (action, method, fields) and link targets of an HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: List[Tuple[str, str, str, List[Tuple[str, str]]]] = []
        self.links: List[str] = []
        self._form: Optional[List[Tuple[str, str]]] = None

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or '' for name, value in attrs}
        if tag == 'form':
            self._form = []
            self.forms.append((attrs.get('id', ''), attrs.get('action', ''),
                               attrs.get('method', 'get').lower(), self._form))
        elif tag == 'input' and self._form is not None and attrs.get('name'):
            if attrs.get('type', 'text').lower() in ('hidden', 'text'):
                self._form.append((attrs['name'], attrs.get('value', '')))
        elif tag == 'a' and attrs.get('href'):
            self.links.append(attrs['href'])

    def handle_endtag(self, tag):
        if tag == 'form':
            self._form = None


def confirm_url(page: str, page_url: str, cookies: Optional[Dict[str, str]] = None
                ) -> Optional[str]:
    """Where a Google Drive "Download anyway" page leads, or None for any other page.

    In order: a GET form whose fields include ``confirm`` (the ``download-form`` of today's
    page: ``id``, ``export``, ``confirm``, ``uuid``); a link carrying ``confirm=``; the page's own
    URL plus ``confirm=TOKEN`` from a ``download_warning*`` cookie (the oldest pages).
    """
    parser = _FormParser()
    try:
        parser.feed(page)
    except Exception:  # noqa: BLE001  (malformed HTML is just "no form")
        return None
    forms = sorted(parser.forms, key=lambda form: form[0] != 'download-form')
    for _, action, method, form_fields in forms:
        if method == 'get' and any(name == 'confirm' for name, _ in form_fields):
            return _with_query(urljoin(page_url, action or page_url), form_fields, replace=True)
    for link in parser.links:
        if 'confirm=' in link:
            return urljoin(page_url, link)
    token = next((value for name, value in (cookies or {}).items()
                  if name.startswith('download_warning')), None)
    if token:
        return _with_query(page_url, [('confirm', token)])
    return None


def _with_query(url: str, form_fields: List[Tuple[str, str]], replace: bool = False) -> str:
    """``url`` with ``form_fields`` in its query (``replace``: instead of its own query)."""
    parts = urlsplit(url)
    query = [] if replace else [(k, v) for k, v in parse_qsl(parts.query)
                                if k not in dict(form_fields)]
    return urlunsplit(parts._replace(query=urlencode(query + list(form_fields))))
