"""The dispatch-room web UI: static ES modules from `web/` (no build step) under `/ui/`, and
ECharts from the npm package pinned in `web/package.json`. `/` leads to the UI.

Only the UI's own files are served: `node_modules/` and the npm manifests are not. Without
`node_modules/` (no `npm ci` yet) `/ui/vendor/echarts.min.js` answers 404 and the UI says charts
are unavailable instead of breaking."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB = Path(__file__).with_name("web")
ECHARTS = WEB / "node_modules" / "echarts" / "dist" / "echarts.min.js"
HIDDEN = {"node_modules", "package.json", "package-lock.json"}


class UiFiles(StaticFiles):
    """The UI's files, revalidated on every load (ETag) so that an upgrade shows at once."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if Path(path).parts[:1] and Path(path).parts[0] in HIDDEN:
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_ui(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui/vendor/echarts.min.js", include_in_schema=False)
    def echarts() -> FileResponse:
        if not ECHARTS.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, "ECharts is not installed: run `make install`")
        return FileResponse(ECHARTS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    app.mount("/ui", UiFiles(directory=WEB, html=True), name="ui")
