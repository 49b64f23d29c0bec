"""The RealSense driver, for real but without a camera: a librealsense software device streams a synthetic bin
(flat floor, one box, a patch of missing depth) into rs.recorder, and the driver plays the .db3 file back
through its normal pipeline."""

import shutil
import time

import numpy as np
import pyrealsense2 as rs
import pytest
from scipy import ndimage

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.drivers import create_camera_driver
from grasp_cell.drivers.base import DriverError
from grasp_cell.drivers.realsense import RealSenseCamera
from grasp_cell.drivers.settings import load_settings
from grasp_cell.graph import package_share
from grasp_cell.models import Observation, create_model

W, H = 640, 480
DEPTH_SCALE = 1e-4  # [m] per z16 unit; not the D400's 1 mm, so a driver that assumes millimetres fails
DEPTH_CAMERA = CameraIntrinsics(W, H, 615.0, 612.0, 321.5, 238.25)
ZOOMED_COLOR_CAMERA = CameraIntrinsics(W, H, 760.0, 756.0, 330.0, 230.0)  # same viewpoint, longer lens
BOX = (slice(200, 280), slice(260, 380))  # rows, columns of the box top in the depth image
HOLE = (slice(100, 110), slice(100, 120))  # no depth here (z16 0)
FLOOR, BOX_TOP = 0.70, 0.64  # [m] camera z
START_MS = 1.7e12  # first frame's timestamp [ms since epoch]
FRAME_MS = 1000.0 / 30
FRAME_COUNT = 3
ROI = (40, 30, 600, 450)
SETTINGS = load_settings(package_share() / "config" / "hardware" / "realsense.yaml")


def scene_depth() -> np.ndarray:
    """[m], 0 = missing: a floor tilting away by 3 cm over the image (so values fall between z16 steps)."""
    depth = FLOOR + 0.03 * np.arange(H)[:, None] / H + np.zeros((1, W))
    depth[BOX] = BOX_TOP
    depth[HOLE] = 0.0
    return depth


def scene_color(frame: int) -> np.ndarray:
    """RGB: red and green ramps, blue = 10 x frame number, a yellow box."""
    color = np.zeros((H, W, 3), np.uint8)
    color[..., 0] = np.arange(W)[None, :] % 256
    color[..., 1] = np.arange(H)[:, None] % 256
    color[..., 2] = 10 * frame
    color[BOX] = (230, 200, 0)
    return color


def _intrinsics(camera: CameraIntrinsics) -> rs.intrinsics:
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = camera.width, camera.height
    intrinsics.fx, intrinsics.fy, intrinsics.ppx, intrinsics.ppy = camera.fx, camera.fy, camera.cx, camera.cy
    intrinsics.model, intrinsics.coeffs = rs.distortion.none, [0.0] * 5
    return intrinsics


def _stream(kind, fmt, bpp: int, uid: int, camera: CameraIntrinsics) -> rs.video_stream:
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid, stream.fmt, stream.bpp = kind, 0, uid, fmt, bpp
    stream.width, stream.height, stream.fps, stream.intrinsics = W, H, 30, _intrinsics(camera)
    return stream


def record(path, color_format=rs.format.rgb8, color_camera=DEPTH_CAMERA, domain=rs.timestamp_domain.system_time):
    """Write FRAME_COUNT synthetic framesets to ``path`` (.db3) from a software device with a z16 depth sensor
    and a colour sensor at the same viewpoint (identity extrinsics)."""
    device = rs.software_device()
    depth_sensor, color_sensor = device.add_sensor("Depth"), device.add_sensor("Color")
    depth_profile = depth_sensor.add_video_stream(_stream(rs.stream.depth, rs.format.z16, 2, 0, DEPTH_CAMERA))
    depth_sensor.add_read_only_option(rs.option.depth_units, DEPTH_SCALE)
    color_profile = color_sensor.add_video_stream(_stream(rs.stream.color, color_format, 3, 1, color_camera))
    identity = rs.extrinsics()
    identity.rotation, identity.translation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], [0.0, 0.0, 0.0]
    depth_profile.register_extrinsics_to(color_profile, identity)

    recorder = rs.recorder(str(path), device)
    sensors = recorder.query_sensors()  # the recording wrappers of depth_sensor and color_sensor
    for sensor, profile in zip(sensors, (depth_profile, color_profile)):
        sensor.open(profile)
        sensor.start(lambda frame: None)
    z16 = np.round(scene_depth() / DEPTH_SCALE).astype(np.uint16)
    for number in range(FRAME_COUNT):
        color = scene_color(number)
        color = color[..., ::-1].copy() if color_format == rs.format.bgr8 else color
        for sensor, profile, pixels in ((depth_sensor, depth_profile, z16), (color_sensor, color_profile, color)):
            frame = rs.software_video_frame()
            bpp = pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1)
            frame.pixels, frame.bpp, frame.stride = pixels, bpp, W * bpp
            frame.timestamp, frame.domain, frame.frame_number = START_MS + number * FRAME_MS, domain, number
            frame.profile = profile.as_video_stream_profile()
            if sensor is depth_sensor:
                frame.depth_units = DEPTH_SCALE
            sensor.on_video_frame(frame)
    for sensor in sensors:
        sensor.stop()
        sensor.close()
    del sensors, recorder  # the recorder finishes the file when released
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return record(tmp_path_factory.mktemp("realsense") / "bin.db3")


@pytest.fixture(scope="module")
def zoomed_bgr_recording(tmp_path_factory):
    """bgr8 colour from a longer lens, stamped on the camera's own clock."""
    return record(
        tmp_path_factory.mktemp("realsense") / "zoomed.db3",
        color_format=rs.format.bgr8,
        color_camera=ZOOMED_COLOR_CAMERA,
        domain=rs.timestamp_domain.hardware_clock,
    )


def camera(path, **options) -> RealSenseCamera:
    """The driver as the cell makes it: by name, from the default settings file with launch options over it."""
    driver = create_camera_driver("realsense", {**SETTINGS, "playback": str(path), **options})
    assert isinstance(driver, RealSenseCamera)
    return driver


def expected_aligned(color_camera: CameraIntrinsics):
    """The scene's depth [m] (NaN = missing) as the colour camera sees it (same viewpoint), and where that is
    well defined: away from depth edges, which alignment may move by a pixel."""
    depth = scene_depth()
    v, u = np.mgrid[0:H, 0:W]
    u_depth = np.round((u - color_camera.cx) * DEPTH_CAMERA.fx / color_camera.fx + DEPTH_CAMERA.cx).astype(int)
    v_depth = np.round((v - color_camera.cy) * DEPTH_CAMERA.fy / color_camera.fy + DEPTH_CAMERA.cy).astype(int)
    seen = (u_depth >= 1) & (u_depth < W - 1) & (v_depth >= 1) & (v_depth < H - 1)
    spread = ndimage.maximum_filter(depth, size=3) - ndimage.minimum_filter(depth, size=3)
    u_depth, v_depth = np.clip(u_depth, 0, W - 1), np.clip(v_depth, 0, H - 1)
    expected = np.where(seen, depth[v_depth, u_depth], 0.0)
    return np.where(expected > 0, expected, np.nan), seen & (spread[v_depth, u_depth] < 1e-3)


def assert_aligned_depth(depth, color_camera):
    expected, stable = expected_aligned(color_camera)
    valid = stable & np.isfinite(expected)
    got = valid & np.isfinite(depth)
    assert got.sum() > 0.95 * valid.sum()  # rs.align leaves thin rows and columns empty, nothing more
    # the ramp moves by < 1 z16 step per pixel, so a pixel of misalignment stays within 2 steps
    assert np.abs(depth[got] - expected[got]).max() <= 2 * DEPTH_SCALE
    assert np.isnan(depth[stable & np.isnan(expected)]).all()  # the hole's inside stays missing


def test_playback_gives_aligned_metres_rgb_and_the_colour_cameras_intrinsics(recording):
    driver = camera(recording, roi=list(ROI))
    try:
        captures = [driver.capture() for _ in range(FRAME_COUNT)]
    finally:
        driver.close()
    assert driver.frame_id == "camera_color_optical_frame"
    for number, capture in enumerate(captures):
        assert capture.depth.shape == (H, W) and capture.depth.dtype == np.float32
        assert_aligned_depth(capture.depth, DEPTH_CAMERA)
        assert capture.color.dtype == np.uint8
        np.testing.assert_array_equal(capture.color, scene_color(number))
        assert capture.intrinsics.to_dict() == pytest.approx(DEPTH_CAMERA.to_dict())
        assert capture.stamp == pytest.approx((START_MS + number * FRAME_MS) / 1000.0, abs=1e-3)
        assert capture.roi == ROI


def test_unaligned_depth_is_the_recorded_depth_to_the_z16_step(recording):
    driver = camera(recording, align_depth_to_color=False)
    try:
        capture = driver.capture()
    finally:
        driver.close()
    assert driver.frame_id == "camera_depth_optical_frame"
    assert capture.color is None and capture.roi is None
    depth = scene_depth()
    np.testing.assert_array_equal(np.isnan(capture.depth), depth == 0.0)  # z16 0 -> NaN, nothing else
    valid = depth > 0
    assert np.abs(capture.depth[valid] - depth[valid]).max() <= DEPTH_SCALE / 2 + 1e-7  # rounding to z16
    assert capture.intrinsics.to_dict() == pytest.approx(DEPTH_CAMERA.to_dict())


def test_depth_is_aligned_into_another_colour_camera_and_bgr_becomes_rgb(zoomed_bgr_recording):
    before = time.time()
    driver = camera(zoomed_bgr_recording)
    try:
        capture = driver.capture()
    finally:
        driver.close()
    assert capture.intrinsics.to_dict() == pytest.approx(ZOOMED_COLOR_CAMERA.to_dict())
    assert_aligned_depth(capture.depth, ZOOMED_COLOR_CAMERA)
    np.testing.assert_array_equal(capture.color, scene_color(0))
    assert before <= capture.stamp <= time.time()  # camera clock: stamped on arrival instead


def test_filters_run_in_place_and_bad_ones_are_named(recording):
    options = {"hole_filling": {"enable": True, "holes_fill": 1}, "spatial": {"enable": "true"}}
    driver = camera(recording, align_depth_to_color=False, filters={**SETTINGS["filters"], **options})
    try:
        capture = driver.capture()
    finally:
        driver.close()
    assert capture.depth.shape == (H, W)
    assert np.isfinite(capture.depth).all()  # the hole is filled
    with pytest.raises(DriverError, match="unknown filter.*decimation"):
        camera(recording, filters={"decimation": {"enable": True}})
    with pytest.raises(DriverError, match="spatial filter has no option 'holes_filled'.*filter_magnitude"):
        camera(recording, filters={"spatial": {"enable": True, "holes_filled": 1}})


def blue(capture) -> int:
    """The frame number scene_color wrote into the image."""
    return int(capture.color[0, 0, 2]) // 10


def test_a_failed_capture_restarts_the_pipeline(recording):
    driver = camera(recording)  # no repeat: after the last frame the stream runs dry, as when a cable drops
    try:
        assert [blue(driver.capture()) for _ in range(FRAME_COUNT)] == list(range(FRAME_COUNT))
        with pytest.raises(DriverError, match="recording has ended.*next capture restarts the camera.*1 of 3"):
            driver.capture()
        assert blue(driver.capture()) == 0  # restarted: the recording's first frame again
    finally:
        driver.close()


def test_a_repeated_recording_starts_over_with_matching_frames(recording):
    driver = camera(recording, repeat_playback=True)
    try:
        captures = [driver.capture() for _ in range(2 * FRAME_COUNT)]
    finally:
        driver.close()
    assert [blue(capture) for capture in captures] == 2 * list(range(FRAME_COUNT))
    stamps = [round(capture.stamp * 1000.0 - START_MS) for capture in captures]  # from the depth frame
    assert stamps == 2 * [round(number * FRAME_MS) for number in range(FRAME_COUNT)]


def test_the_camera_is_dead_after_reconnect_attempts_failures(recording, tmp_path):
    path = shutil.copy(recording, tmp_path / "copy.db3")
    driver = camera(path, reconnect_attempts=2)
    try:
        for _ in range(FRAME_COUNT):
            driver.capture()
        with pytest.raises(DriverError, match="next capture restarts"):
            driver.capture()
        (tmp_path / "copy.db3").unlink()  # the restart finds no camera
        with pytest.raises(DriverError, match="camera is dead after 2 failed captures.*no such file"):
            driver.capture()
        with pytest.raises(DriverError, match="camera is dead"):  # and it stays so, without retrying
            driver.capture()
    finally:
        driver.close()


def test_start_up_faults_say_what_is_missing(tmp_path):
    with pytest.raises(DriverError, match="missing.db3: no such file.*playback"):
        camera(tmp_path / "missing.db3")
    with pytest.raises(DriverError, match="serial 000000000000.*connected: "):
        create_camera_driver("realsense", {**SETTINGS, "serial": "000000000000"})
    with pytest.raises(DriverError, match="bad setting"):
        create_camera_driver("realsense", {**SETTINGS, "width": "wide"})


def test_the_cell_plans_grasps_on_the_box_from_a_played_back_capture(recording):
    driver = camera(recording, roi=list(ROI))
    try:
        capture = driver.capture()
    finally:
        driver.close()
    model = create_model("baseline")  # the cell's default model
    grasps = model.plan(Observation(capture.depth, capture.intrinsics, capture.color, capture.roi))
    assert grasps
    qualities = [grasp.quality for grasp in grasps]
    assert qualities == sorted(qualities, reverse=True)
    u, v = grasps[0].pixel
    assert BOX[0].start <= v < BOX[0].stop and BOX[1].start <= u < BOX[1].stop
    assert grasps[0].position[2] == pytest.approx(BOX_TOP, abs=0.005)
