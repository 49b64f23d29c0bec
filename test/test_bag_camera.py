"""BagCamera on small rosbag2 files written here with rosbags (mcap and sqlite3 storage)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from grasp_cell.core.camera import CameraIntrinsics
from grasp_cell.drivers import DriverError, create_camera_driver
from grasp_cell.drivers import camera_msgs as msgs
from grasp_cell.drivers.bag_camera import BagCamera, write_capture_bag
from grasp_cell.drivers.base import Capture
from grasp_cell.drivers.settings import load_settings

CONFIG = Path(__file__).resolve().parents[1] / "config" / "hardware" / "bag.yaml"
INTRINSICS = CameraIntrinsics(8, 6, 10.0, 11.0, 3.5, 2.5)
TOPICS = dict(depth_topic="/depth/image", camera_info_topic="/depth/camera_info", color_topic="/color/image")
STAMPS = [100.0, 100.1, 100.2, 100.3, 100.4]


def make_captures(stamps=STAMPS) -> list[Capture]:
    """Captures whose depth and colour say which one they are: depth 0.5 m + 0.1 m per index, colour = index."""
    captures = []
    for i, stamp in enumerate(stamps):
        depth = np.full((6, 8), 0.5 + 0.1 * i, np.float32)
        depth[0, 0] = np.nan  # missing pixel
        color = np.zeros((6, 8, 3), np.uint8)
        color[..., 0], color[..., 1], color[..., 2] = i, 100 + i, 200 + i
        captures.append(Capture(depth=depth, intrinsics=INTRINSICS, color=color, stamp=stamp))
    return captures


def write_messages(path: Path, messages: list[tuple[str, object]], storage: str = "mcap") -> Path:
    """A bag of (topic, message) pairs, logged at their header stamps."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {}
        for topic, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=msgs.TYPESTORE)
            raw = msgs.TYPESTORE.serialize_cdr(msg, msg.__msgtype__)
            writer.write(connections[topic], msgs.stamp_ns(msg.header), raw)
    return path


def open_bag(path, **options) -> BagCamera:
    return BagCamera(path, **{**TOPICS, **options})


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_trigger_mode_serves_recorded_captures_in_order(tmp_path, storage, encoding):
    bag = write_capture_bag(tmp_path / "bag", make_captures(), storage=storage, depth_encoding=encoding, **TOPICS)
    camera = open_bag(bag)
    for i, stamp in enumerate(STAMPS):
        capture = camera.capture()
        assert capture.stamp == pytest.approx(stamp, abs=1e-9)
        assert capture.depth.dtype == np.float32 and np.isnan(capture.depth[0, 0])
        np.testing.assert_allclose(capture.depth[1:, 1:], 0.5 + 0.1 * i, atol=1e-6)
        assert capture.color.dtype == np.uint8 and tuple(capture.color[3, 4]) == (i, 100 + i, 200 + i)
        assert capture.intrinsics == INTRINSICS
    with pytest.raises(DriverError, match=r"exhausted after serving 5 of 5 recorded captures.*loop: true"):
        camera.capture()
    camera.close()


@pytest.mark.parametrize("storage, suffix", [("mcap", ".mcap"), ("sqlite3", ".db3")])
def test_reads_a_single_storage_file_without_metadata(tmp_path, storage, suffix):
    bag = write_capture_bag(tmp_path / "bag", make_captures(STAMPS[:2]), storage=storage, **TOPICS)
    (storage_file,) = bag.glob(f"*{suffix}")
    camera = open_bag(storage_file)
    assert [camera.capture().stamp for _ in range(2)] == pytest.approx(STAMPS[:2])


def test_loop_starts_over(tmp_path):
    camera = open_bag(write_capture_bag(tmp_path / "bag", make_captures(STAMPS[:2]), **TOPICS), loop=True)
    assert [camera.capture().stamp for _ in range(5)] == pytest.approx([100.0, 100.1, 100.0, 100.1, 100.0])


def test_depth_only_bag_and_frame_id(tmp_path):
    captures = [Capture(c.depth, c.intrinsics, None, c.stamp) for c in make_captures(STAMPS[:2])]
    bag = write_capture_bag(tmp_path / "bag", captures, frame_id="ensenso_optical_frame", **TOPICS)
    depth_only = {**TOPICS, "color_topic": ""}
    recorded = BagCamera(bag, **depth_only)
    assert recorded.frame_id == "ensenso_optical_frame"
    assert recorded.capture().color is None
    assert BagCamera(bag, **depth_only, frame_id="camera_optical_frame").frame_id == "camera_optical_frame"


class FakeClock:
    """A monotonic clock the test moves by hand; ``sleep`` advances it and records the wait."""

    def __init__(self):
        self.now = 50.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_mode_skips_captures_that_went_by_and_waits_for_the_next(tmp_path):
    clock = FakeClock()
    bag = write_capture_bag(tmp_path / "bag", make_captures(), **TOPICS)
    camera = open_bag(bag, mode="rate", clock=clock, sleep=clock.sleep)
    assert camera.capture().stamp == pytest.approx(100.0)  # the first call starts the replay
    clock.now += 0.25
    assert camera.capture().stamp == pytest.approx(100.2)  # 100.1 went by
    clock.now += 0.01
    assert camera.capture().stamp == pytest.approx(100.3)  # nothing new yet: waits for it
    assert clock.sleeps == [pytest.approx(0.04)]
    clock.now += 5.0
    assert camera.capture().stamp == pytest.approx(100.4)  # the recording ended: its last capture
    assert (camera.served_count, camera.skipped_count) == (4, 1)
    with pytest.raises(DriverError, match=r"exhausted after serving 4 of 5 recorded captures, 1 skipped"):
        camera.capture()


def test_rate_mode_loops_with_one_frame_interval_between_cycles(tmp_path):
    clock = FakeClock()
    bag = write_capture_bag(tmp_path / "bag", make_captures(), **TOPICS)
    camera = open_bag(bag, mode="rate", loop=True, clock=clock, sleep=clock.sleep)
    camera.capture()
    clock.now += 0.45  # one cycle is 0.4 s of recording + 0.1 s
    assert camera.capture().stamp == pytest.approx(100.4)
    clock.now += 0.12  # 0.57 s: 0.07 s into the second cycle
    assert camera.capture().stamp == pytest.approx(100.0)
    clock.now += 0.01
    assert camera.capture().stamp == pytest.approx(100.1)
    assert clock.sleeps == [pytest.approx(0.02)]


def test_padded_big_endian_depth_and_bgr_colours(tmp_path):
    depth = np.arange(48, dtype=np.float32).reshape(6, 8) * 0.01 + 0.3
    depth[2, 3] = 0.0  # 0 = missing
    header = msgs.make_header(7.5, "cam")
    rows = np.zeros((6, 8 * 4 + 8), np.uint8)  # 8 bytes of padding per row
    rows[:, :32] = depth.astype(">f4").view(np.uint8).reshape(6, 32)
    depth_msg = msgs.Image(header=header, height=6, width=8, encoding="32FC1", is_bigendian=1, step=40,
                           data=rows.reshape(-1))
    rgb = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    camera_info = msgs.intrinsics_to_camera_info(INTRINSICS, header)
    for encoding, pixels in [("bgr8", rgb[..., ::-1]), ("bgra8", np.dstack([rgb[..., ::-1], np.full((6, 8), 9)])),
                             ("rgba8", np.dstack([rgb, np.full((6, 8), 9)]))]:
        channels = pixels.shape[2]
        padded = np.zeros((6, 8 * channels + 3), np.uint8)
        padded[:, : 8 * channels] = pixels.reshape(6, -1)
        color_msg = msgs.Image(header=header, height=6, width=8, encoding=encoding, is_bigendian=0,
                               step=8 * channels + 3, data=padded.reshape(-1))
        bag = write_messages(tmp_path / encoding, [(TOPICS["depth_topic"], depth_msg),
                                                   (TOPICS["camera_info_topic"], camera_info),
                                                   (TOPICS["color_topic"], color_msg)], storage="sqlite3")
        capture = open_bag(bag).capture()
        expected = depth.copy()
        expected[2, 3] = np.nan
        np.testing.assert_allclose(capture.depth, expected, rtol=1e-6)
        np.testing.assert_array_equal(capture.color, rgb)
        assert capture.stamp == 7.5


def test_16uc1_zero_is_missing(tmp_path):
    captures = make_captures(STAMPS[:1])
    captures[0].depth[1, 1] = 0.0
    capture = open_bag(write_capture_bag(tmp_path / "bag", captures, depth_encoding="16UC1", **TOPICS)).capture()
    assert np.isnan(capture.depth[1, 1]) and capture.depth[2, 2] == pytest.approx(0.5)


def test_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(DriverError, match="no such file or folder"):
        open_bag(tmp_path / "missing")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DriverError, match="folder has no metadata.yaml; set 'path' to the .mcap or .db3 file"):
        open_bag(tmp_path / "folder")
    (tmp_path / "notes.txt").write_text("not a bag")
    with pytest.raises(DriverError, match="cannot be read as a rosbag2"):
        open_bag(tmp_path / "notes.txt")
    bag = write_capture_bag(tmp_path / "bag", make_captures(STAMPS[:2]), **TOPICS)
    with pytest.raises(DriverError, match=r"topic '/camera/depth' is not in the bag; it has: .*/depth/image "
                                          r"\(sensor_msgs/msg/Image\)"):
        open_bag(bag, depth_topic="/camera/depth")
    with pytest.raises(DriverError, match="holds sensor_msgs/msg/CameraInfo, expected sensor_msgs/msg/Image"):
        open_bag(bag, depth_topic="/depth/camera_info")
    with pytest.raises(DriverError, match="mode 'stream' is not one of trigger, rate"):
        open_bag(bag, mode="stream")


def one_capture_bag(path, info_shift=0.0, info_size=(8, 6), encoding="32FC1", color_encoding="rgb8"):
    """One depth, CameraInfo and colour message, each of which the test can get wrong."""
    header = msgs.make_header(10.0, "cam")
    depth_msg = replace(msgs.depth_to_image(np.full((6, 8), 0.5, np.float32), header), encoding=encoding)
    intrinsics = CameraIntrinsics(*info_size, 10.0, 10.0, 3.5, 2.5)
    info = msgs.intrinsics_to_camera_info(intrinsics, msgs.make_header(10.0 + info_shift, "cam"))
    color = replace(msgs.color_to_image(np.zeros((6, 8, 3), np.uint8), header), encoding=color_encoding)
    return write_messages(path, [(TOPICS["depth_topic"], depth_msg), (TOPICS["camera_info_topic"], info),
                                 (TOPICS["color_topic"], color)])


def test_unsupported_encodings_are_named(tmp_path):
    with pytest.raises(DriverError, match=r"depth encoding 'mono16' is not supported; supported: 32FC1, 16UC1"):
        open_bag(one_capture_bag(tmp_path / "depth", encoding="mono16"))
    with pytest.raises(DriverError, match=r"colour encoding 'yuv422' is not supported; supported: rgb8, bgr8"):
        open_bag(one_capture_bag(tmp_path / "color", color_encoding="yuv422"))


def test_depth_needs_a_camera_info_within_tolerance(tmp_path):
    bag = one_capture_bag(tmp_path / "bag", info_shift=0.05)
    with pytest.raises(DriverError, match=r"t=10.000000 has no CameraInfo on /depth/camera_info within "
                                          r"match_tolerance 0.01 s \(nearest is 0.050000 s away\)"):
        open_bag(bag)
    assert open_bag(bag, match_tolerance=0.1).capture().intrinsics.width == 8


def test_depth_and_camera_info_sizes_must_agree(tmp_path):
    with pytest.raises(DriverError, match="is 8x6 but its CameraInfo is 16x12"):
        open_bag(one_capture_bag(tmp_path / "bag", info_size=(16, 12)))


def test_created_from_the_default_settings_file(tmp_path):
    """config/hardware/bag.yaml with only the launch's bag:= path set serves an Ensenso-style depth-only bag."""
    captures = [Capture(c.depth, c.intrinsics, None, c.stamp) for c in make_captures(STAMPS[:2])]
    bag = write_capture_bag(tmp_path / "bag", captures)  # the writer's default topics are the Ensenso driver's
    camera = create_camera_driver("bag", load_settings(CONFIG, {"path": str(bag), "roi": [1, 1, 7, 5]}))
    capture = camera.capture()
    assert capture.stamp == pytest.approx(100.0) and capture.roi == (1, 1, 7, 5)
    assert camera.frame_id == "camera_optical_frame"
    with pytest.raises(DriverError, match="setting 'path' is missing"):
        create_camera_driver("bag", load_settings(CONFIG))
    with pytest.raises(DriverError, match="roi must be"):
        create_camera_driver("bag", load_settings(CONFIG, {"path": str(bag), "roi": [0, 0, 9, 6]}))
