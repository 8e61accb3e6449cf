"""Storage and disk errors as one line that names the path or URI and says what to do.

A write error on a full disk carries no file name (`OSError: [Errno 28] No space left on device`),
and s3fs/botocore errors name the request, not the output: the command that knows which output it
was writing (`where`) turns them into a sentence. Anything that is not a storage error gives None
and goes on as it was.
"""

from __future__ import annotations

import errno

_ERRNO_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space, then run the same command to resume",
    errno.EDQUOT: "disk quota exceeded; free some space, then run the same command to resume",
    errno.EROFS: "the file system is read-only; write to another folder or remount it read-write",
    errno.EACCES: "permission denied; check who owns it and its mode",
    errno.EPERM: "operation not permitted; check who owns it and its mode",
    errno.EIO: "input/output error from the device; check the disk",
}

# botocore/aiobotocore error class names and S3 error codes, without importing either
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError")
_NO_BUCKET = ("NoSuchBucket",)
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError")
_DENIED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "Forbidden")


class CorruptFile(OSError):
    """A file whose bytes fail their checksum or do not parse (a flipped bit, a truncated upload)."""

    def __init__(self, where: str, reason: str, advice: str = "restore it or write it again"):
        self.where = where
        self.reason = reason
        self.advice = advice
        super().__init__(f"{where} is corrupt ({reason}); {advice}")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def storage_error(exc: BaseException, where: str) -> str | None:
    """One line for a storage error met while working on `where` (an output folder or URI), or None."""
    for err in _chain(exc):
        if isinstance(err, CorruptFile):
            return str(err)
        names = {cls.__name__ for cls in type(err).__mro__}
        text = str(err)
        if names & set(_NO_CREDENTIALS) or "Unable to locate credentials" in text:
            return (
                f"no credentials for {where}: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                'give them in --storage-options (\'{"key": ..., "secret": ...}\'; a public bucket: \'{"anon": true}\')'
            )
        if names & set(_UNREACHABLE) or "Could not connect to the endpoint URL" in text:
            return (
                f"cannot reach the object store for {where}: {_first_line(text)}; "
                "check the endpoint_url in --storage-options and the network"
            )
        if any(code in text for code in _NO_BUCKET) or ("bucket" in text.lower() and "not exist" in text.lower()):
            return f"the bucket of {where} does not exist; create it or fix the URI"
        if any(code in text for code in _DENIED) or isinstance(err, PermissionError) and not err.errno:
            return f"access denied to {where}: {_first_line(text)}; check the credentials and the bucket policy"
        if isinstance(err, OSError) and err.errno in _ERRNO_ADVICE:
            path = f" ({err.filename})" if err.filename else ""
            return f"{where}{path}: {_ERRNO_ADVICE[err.errno]}"
    return None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]
