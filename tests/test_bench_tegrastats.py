"""The tegrastats parser on the line formats of each Jetson generation, and the background sampler.

Sample lines follow the formats in NVIDIA's tegrastats documentation (L4T developer guides):
timestamps from JetPack 5 on, 'mW' units on rails from JetPack 5 on, GR3D frequency lists on
Orin, board input rails VDD_IN / POM_5V_IN, and AGX boards without an input rail.
"""

from __future__ import annotations

import sys
import textwrap
import time

import pytest

from socket_edge.bench.tegrastats import TegrastatsSampler, parse_line, summarize

ORIN_NANO_JP5 = (
    "04-21-2023 10:12:31 RAM 2448/7620MB (lfb 1x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [1%@729,0%@729,0%@729,0%@729,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] VIC_FREQ 115 "
    "APE 200 CV0@-256C CPU@46.343C SOC2@45.062C SOC0@45.187C CV1@-256C GPU@44.031C tj@46.343C "
    "SOC1@44.562C CV2@-256C VDD_IN 5292mW/5292mW VDD_CPU_GPU_CV 771mW/771mW VDD_SOC 1505mW/1505mW"
)
ORIN_NX_JP6 = (
    "11-05-2024 14:03:11 RAM 3020/15656MB (lfb 7x4MB) SWAP 0/7828MB (cached 0MB) "
    "CPU [12%@1510,8%@1510,3%@1510,5%@1510,2%@1510,0%@1510,1%@1510,0%@1510] EMC_FREQ 3%@3199 "
    "GR3D_FREQ 87%@[624,624] NVDEC off NVJPG off NVJPG1 off VIC off OFA off NVDLA0 off NVDLA1 off "
    "PVA0_FREQ off APE 200 cpu@51.5C soc2@48.218C soc0@49.343C gpu@50.031C tj@51.5C "
    "soc1@48.531C VDD_IN 9180mW/7410mW VDD_CPU_GPU_CV 3551mW/2410mW VDD_SOC 2243mW/1990mW"
)
AGX_ORIN_JP5 = (
    "03-15-2023 09:20:44 RAM 4722/30536MB (lfb 5384x4MB) SWAP 0/15268MB (cached 0MB) "
    "CPU [2%@1190,0%@1190,0%@1190,0%@1190,0%@729,0%@729,0%@729,0%@729,off,off,off,off] "
    "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CV0@43.75C CPU@45.656C "
    "SOC2@43.343C SOC0@44.125C CV1@43.343C GPU@42.937C tj@45.656C SOC1@42.406C CV2@42.812C "
    "VDD_GPU_SOC 2400mW/2400mW VDD_CPU_CV 400mW/400mW VIN_SYS_5V0 2923mW/2923mW NC 0mW/0mW "
    "VDDQ_VDD2_1V8AO 302mW/302mW NC 0mW/0mW"
)
AGX_XAVIER_JP4 = (
    "RAM 2373/15698MB (lfb 2985x4MB) SWAP 0/7849MB (cached 0MB) "
    "CPU [2%@1190,1%@1190,0%@1190,0%@1190,off,off,off,off] EMC_FREQ 0%@1331 GR3D_FREQ 0%@318 "
    "APE 150 MTS fg 0% bg 0% AO@37C GPU@37.5C Tdiode@40C PMIC@100C AUX@36.5C CPU@38C "
    "thermal@37.15C Tboard@37C GPU 0/0 CPU 311/311 SOC 1244/1244 CV 0/0 VDDRQ 155/155 "
    "SYS5V 1784/1784"
)
XAVIER_NX_JP4 = (
    "RAM 1906/7773MB (lfb 1x4MB) SWAP 0/3886MB (cached 0MB) CPU [6%@1190,3%@1190,off,off,off,off] "
    "EMC_FREQ 0% GR3D_FREQ 0% AO@38C GPU@37.5C PMIC@100C AUX@37.5C CPU@39C thermal@38.05C "
    "VDD_IN 4306/4306 VDD_CPU_GPU_CV 532/532 VDD_SOC 1267/1267"
)
NANO_JP4 = (
    "RAM 1580/3964MB (lfb 160x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [9%@1479,6%@1479,5%@1479,3%@1479] EMC_FREQ 3%@1600 GR3D_FREQ 0%@921 APE 25 PLL@31C "
    "CPU@33.5C PMIC@100C GPU@32C AO@40.5C thermal@32.75C POM_5V_IN 1951/1951 POM_5V_GPU 0/0 "
    "POM_5V_CPU 323/323"
)
TX2_JP4 = (
    "RAM 1723/7854MB (lfb 1118x4MB) SWAP 0/3927MB (cached 0MB) CPU [3%@345,off,off,2%@345,1%@345,"
    "1%@345] EMC_FREQ 0%@1866 GR3D_FREQ 0%@114 APE 150 PLL@38C MCPU@38C PMIC@100C Tboard@34C "
    "GPU@36C BCPU@38C thermal@37.2C Tdiode@37.25C VDD_SYS_GPU 152/152 VDD_SYS_SOC 609/609 "
    "VDD_4V0_WIFI 0/0 VDD_IN 2434/2434 VDD_SYS_CPU 152/152 VDD_SYS_DDR 280/280"
)
# The older CPU field: loads in the brackets, one frequency after them (TX1-era documentation).
OLD_CPU_FORMAT = (
    "RAM 220/38955MB (lfb 847x4MB) CPU [1%,5%,0%,0%]@102 EMC_FREQ 0%@204 GR3D_FREQ 0%@76"
)


@pytest.mark.parametrize(
    "line, power, rail",
    [
        (ORIN_NANO_JP5, 5292, "VDD_IN"),
        (ORIN_NX_JP6, 9180, "VDD_IN"),  # the current reading, not the running average (7410)
        (AGX_ORIN_JP5, 2400 + 400 + 2923 + 0 + 302, "sum of"),
        (AGX_XAVIER_JP4, 0 + 311 + 1244 + 0 + 155 + 1784, "sum of"),
        (XAVIER_NX_JP4, 4306, "VDD_IN"),
        (NANO_JP4, 1951, "POM_5V_IN"),
        (TX2_JP4, 2434, "VDD_IN"),
    ],
)
def test_board_input_power_of_each_generation(line, power, rail):
    sample = parse_line(line)
    assert sample is not None
    value, source = sample.input_power()
    assert value == power
    assert source.startswith(rail)


def test_orin_line_fields():
    s = parse_line(ORIN_NANO_JP5)
    assert s.stamp == "04-21-2023 10:12:31"
    assert (s.ram_used_mb, s.ram_total_mb, s.swap_used_mb, s.swap_total_mb) == (2448, 7620, 0, 3810)
    assert s.cpu_load == [1, 0, 0, 0, None, None]
    assert s.cpu_mhz == [729, 729, 729, 729, None, None]
    assert s.engines["GR3D_FREQ"] == {"load": 0, "mhz": [305]}
    assert s.engines["EMC_FREQ"] == {"load": 0, "mhz": 2133}
    assert s.engines["VIC_FREQ"] == {"mhz": 115}
    assert s.temps["CPU"] == pytest.approx(46.343)
    assert "CV0" not in s.temps  # -256C: sensor off
    assert s.rails == {
        "VDD_IN": (5292, 5292),
        "VDD_CPU_GPU_CV": (771, 771),
        "VDD_SOC": (1505, 1505),
    }


def test_orin_jetpack6_line_fields():
    s = parse_line(ORIN_NX_JP6)
    assert s.gpu_load == 87
    assert s.engines["GR3D_FREQ"]["mhz"] == [624, 624]
    assert len(s.cpu_load) == 8 and s.cpu_mhz[0] == 1510
    assert s.temps["gpu"] == pytest.approx(50.031)
    assert s.rails["VDD_SOC"] == (2243, 1990)


def test_xavier_rails_without_units_are_not_confused_with_temperatures_or_memory():
    s = parse_line(AGX_XAVIER_JP4)
    assert s.rails == {
        "GPU": (0, 0),
        "CPU": (311, 311),
        "SOC": (1244, 1244),
        "CV": (0, 0),
        "VDDRQ": (155, 155),
        "SYS5V": (1784, 1784),
    }
    assert s.temps["GPU"] == 37.5 and s.temps["Tboard"] == 37.0
    assert s.engines["GR3D_FREQ"] == {"load": 0, "mhz": 318}
    assert s.cpu_load[:4] == [2, 1, 0, 0] and s.cpu_load[4:] == [None] * 4
    assert s.stamp is None


def test_xavier_nx_engines_without_frequency():
    s = parse_line(XAVIER_NX_JP4)
    assert s.engines["GR3D_FREQ"] == {"load": 0}
    assert s.engines["EMC_FREQ"] == {"load": 0}
    assert s.rails["VDD_CPU_GPU_CV"] == (532, 532)


def test_nano_line_with_iram():
    s = parse_line(NANO_JP4)
    assert s.ram_used_mb == 1580
    assert s.rails == {"POM_5V_IN": (1951, 1951), "POM_5V_GPU": (0, 0), "POM_5V_CPU": (323, 323)}
    assert s.cpu_load == [9, 6, 5, 3] and s.cpu_mhz == [1479] * 4
    assert s.engines["GR3D_FREQ"] == {"load": 0, "mhz": 921}
    assert s.temps["thermal"] == pytest.approx(32.75)


def test_old_cpu_format_shares_one_frequency():
    s = parse_line(OLD_CPU_FORMAT)
    assert s.cpu_load == [1, 5, 0, 0]
    assert s.cpu_mhz == [102] * 4
    assert s.input_power() is None  # no power rails on that board


@pytest.mark.parametrize("line", ["", "   ", "tegrastats: command not found", "Usage: tegrastats"])
def test_non_tegrastats_lines_are_ignored(line):
    assert parse_line(line) is None


def test_summarize_means_current_power_and_peaks():
    samples = [parse_line(ORIN_NANO_JP5), parse_line(ORIN_NX_JP6)]
    out = summarize(samples, interval_ms=100)
    assert out["mean_mw"] == pytest.approx((5292 + 9180) / 2)
    assert out["max_mw"] == 9180
    assert out["rail"] == "VDD_IN"
    assert out["samples"] == 2
    assert out["gpu_load_mean_pct"] == pytest.approx(43.5)
    assert out["ram_max_mb"] == 3020
    assert summarize([parse_line(OLD_CPU_FORMAT)]) is None


def fake_tegrastats(lines: list[str], period_s: float = 0.02) -> list[str]:
    """A command that prints tegrastats lines forever, as `tegrastats --interval` does."""
    script = textwrap.dedent(f"""
        import sys, time
        lines = {lines!r}
        i = 0
        while True:
            print(lines[i % len(lines)], flush=True)
            i += 1
            time.sleep({period_s})
    """)
    return [sys.executable, "-u", "-c", script]


def test_sampler_reads_a_running_process_and_windows_by_time():
    sampler = TegrastatsSampler(20, command=fake_tegrastats([ORIN_NANO_JP5, "garbage", NANO_JP4]))
    with sampler:
        deadline = time.perf_counter() + 10
        while len(sampler.samples) < 6 and time.perf_counter() < deadline:
            time.sleep(0.02)
        t_mid = time.perf_counter()
        time.sleep(0.1)
    assert sampler._proc is None  # stopped: the child was terminated
    assert sampler.lines > len(sampler.samples)  # the garbage line was read and skipped
    all_samples = sampler.window(0, float("inf"))
    assert len(all_samples) >= 6
    powers = {s.input_power()[0] for s in all_samples}
    assert powers == {5292.0, 1951.0}
    early = sampler.window(0, t_mid)
    assert 0 < len(early) < len(all_samples)
    summary = sampler.summary(0, float("inf"))
    assert 1951 <= summary["mean_mw"] <= 5292
    assert summary["samples"] == len(all_samples)
