"""Photo evidence: upload (multipart, once per Idempotency-Key), list, and fetch by role."""

from __future__ import annotations

from flask import jsonify, request, send_file

from server import media
from server.api import bp
from server.api.common import CLIENT_UUID_HEADER, client_uuid, commit, viewer
from server.api.outputs import PhotoList, PhotoOut, photo_out
from server.api.spec import endpoint
from server.models.types import utcnow
from server.schemas import PhotoIn
from server.services import appeals as appeal_service
from server.services import evidence
from server.services.errors import Unprocessable


@bp.post("/appeals/<int:appeal_id>/photos")
@endpoint(form=PhotoIn, files=["file"], responses={201: PhotoOut, 200: PhotoOut}, tags=["field"],
          headers=[CLIENT_UUID_HEADER], max_content_length=media.MAX_REQUEST_BYTES)
def upload_photo(appeal_id: int, form: PhotoIn):
    """Add a before/after photo (JPEG, PNG or WebP, at most 12 MiB and 64 megapixels) as the assignee."""
    staff = viewer()
    upload = request.files.get("file")
    if upload is None:
        raise Unprocessable("file_required", field="file")
    data = upload.stream.read(media.MAX_BYTES + 1)  # one byte more than allowed tells "too large"
    meta = evidence.PhotoMeta(kind=form.kind, sha256=form.sha256, lat=form.lat, lon=form.lon,
                              accuracy_m=form.accuracy_m, device_time=form.device_time)
    outcome = evidence.add_photo(appeal_id, staff, data, meta, utcnow(), client_uuid=client_uuid(),
                                 serialise=lambda photo: photo_out(photo, staff))
    commit(outcome.events)
    return jsonify(outcome.body), outcome.status


@bp.get("/appeals/<int:appeal_id>/photos")
@endpoint(responses={200: PhotoList}, tags=["field"])
def list_photos(appeal_id: int):
    """The photos of an appeal you may see, oldest first."""
    staff = viewer()
    appeal = appeal_service.get_appeal(appeal_id, staff)
    return jsonify([photo_out(p, staff) for p in evidence.list_photos(appeal)])


@bp.get("/photos/<public_id>/<variant>")
@endpoint(tags=["field"])
def get_photo(public_id: str, variant: str):
    """One photo's ``thumb``, ``large`` or ``original`` file (only for whoever may see its appeal)."""
    path, mime = evidence.photo_file(public_id, variant, viewer())
    response = send_file(path, mimetype=mime, conditional=False, etag=False, max_age=0)
    # Evidence of a citizen's case: never in a shared cache, never sniffed into anything but an image.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
