# ruff: noqa: E501  (the manual's paragraphs are one line each, as an author writes them)
"""Makes tests/fixtures/knowledge/powerbank-manual-zh.pdf: a Chinese product manual as a vendor would
publish it (Chromium's print to PDF: embedded CJK font subset, headings set larger than the body,
lines wrapped mid-word by the layout). Needs Debian's chromium and a CJK font (fonts-wqy-microhei).

    python -m tests.support.manual_pdf tests/fixtures/knowledge/powerbank-manual-zh.pdf
"""

from __future__ import annotations

import sys

MANUAL_HTML = """<html lang="zh-CN"><head><meta charset="utf-8"><title>小蓝充电宝 P20 使用说明书</title>
<style>body{font-family:'WenQuanYi Micro Hei';font-size:12pt;width:15cm} h1{font-size:18pt} h2{font-size:14pt}</style></head><body>
<h1>小蓝充电宝 P20 使用说明书</h1>
<p>感谢您购买小蓝充电宝 P20。使用前请仔细阅读本说明书，并妥善保管以备日后查阅。</p>
<h2>一、产品参数</h2>
<p>型号：P20　电池类型：锂聚合物电池　额定容量：20000mAh（74Wh）　输入：USB-C 5V 3A / 9V 2.22A　输出：USB-C 最大20W，USB-A 最大18W　重量：约360克　尺寸：148×68×27毫米。</p>
<h2>二、为充电宝充电</h2>
<p>请使用随附的USB-C数据线和20W及以上的快充充电器为充电宝充电。使用20W快充充电器时，充满一次大约需要4.5小时；使用普通5V/2A充电器时约需要9小时。充电过程中电量指示灯依次闪烁，四颗指示灯全部常亮表示已充满。首次使用前建议先将充电宝充满电。</p>
<h2>三、为手机等设备充电</h2>
<p>将设备的数据线插入充电宝的USB-C或USB-A接口，充电宝会自动开始输出。两个接口可以同时为两台设备充电，此时总输出功率为最大18W。充满电的P20可以为一部4000mAh的手机充电约3.5次。设备充满后，充电宝在30秒内自动关闭输出。</p>
<h2>四、电量指示灯</h2>
<p>短按电源键可查看剩余电量：一颗灯亮表示剩余电量低于25%，两颗灯表示25%至50%，三颗灯表示50%至75%，四颗灯表示75%以上。第一颗灯快速闪烁表示电量即将耗尽，请尽快充电。</p>
<h2>五、安全注意事项</h2>
<p>请勿将充电宝放在高温环境（超过45℃）或阳光直射处，请勿挤压、拆解或浸水。乘坐飞机时请随身携带，不要托运；74Wh以下的充电宝一般可以随身带上飞机。长期不用时，请每三个月充放电一次，保持约50%的电量存放。</p>
<h2>六、保修</h2>
<p>自购买之日起享受12个月保修。保修期内因产品质量问题导致的故障，凭购买凭证免费维修或更换。人为损坏、进水或私自拆机不在保修范围内。</p>
</body></html>"""


def main() -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page()
        page.set_content(MANUAL_HTML)
        page.pdf(path=sys.argv[1], format="A5")
        browser.close()


if __name__ == "__main__":
    main()
