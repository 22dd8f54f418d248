"""HTTP(S) file downloads for ``evs weights get`` (design §6): progress, resume, checksum.

Only the explicit ``evs weights get`` command calls this module; nothing else downloads.

A download goes to ``DEST.part``. An interrupted transfer keeps the ``.part`` file and continues
with an HTTP ``Range: bytes=N-`` request, within the same run (``ATTEMPTS`` tries) and in a later
run. Only a file whose checksum matches is renamed to ``DEST``; a mismatch deletes the ``.part``
file, so a refused download leaves nothing behind. Standard library only (``urllib``) plus tqdm.
"""

import hashlib
import http.client
import os
import sys
from typing import Optional
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0
ATTEMPTS = 3
USER_AGENT = 'evs_ros-weights/1'


class DownloadError(ValueError):
    """A download that cannot go on; the message says what to do."""


class OfflineError(DownloadError):
    """The server cannot be reached (no network, refused, DNS) or keeps dropping the transfer."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the published file; nothing was kept."""


class _Interrupted(Exception):
    """The connection ended before the announced length; the ``.part`` file is kept."""


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
    last_error: Optional[_Interrupted] = None
    for _ in range(ATTEMPTS):
        try:
            _download_once(url, part_path, progress, html_hint)
            break
        except _Interrupted as error:
            last_error = error
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


def _download_once(url: str, part_path: str, progress: bool, html_hint: str) -> None:
    start = os.path.getsize(part_path) if os.path.isfile(part_path) else 0
    response = _open(url, start)
    if response is None:  # 416: the .part file already holds the whole file
        return
    with response:
        if start and response.status != 206:  # the server ignored Range: start over
            start = 0
        if response.headers.get_content_type() == 'text/html':
            raise DownloadError(f'{url} answered with a web page instead of the file '
                                f'(a sign-in or confirmation page?); {html_hint}'.rstrip('; '))
        length = response.headers.get('Content-Length')
        total = start + int(length) if length else None
        with open(part_path, 'ab' if start else 'wb') as stream:
            received = _copy(response, stream, start, total, progress)
    if total is not None and start + received < total:
        raise _Interrupted(f'connection closed after {start + received} of {total} bytes')


def _open(url: str, start: int):
    """``urlopen`` with a Range header when resuming; None when the file is already complete."""
    headers = {'User-Agent': USER_AGENT}
    if start:
        headers['Range'] = f'bytes={start}-'
    try:
        return urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as error:
        if error.code == 416 and start:
            return None
        raise DownloadError(f'{url} answered HTTP {error.code} {error.reason}') from error
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
