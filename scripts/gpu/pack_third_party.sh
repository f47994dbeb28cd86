#!/usr/bin/env bash
# On a development machine (after scripts/setup.sh): copy the Debian-built header-only and static
# dependencies into third_party/ (ignored by git) so that a machine without apt (the GPU machine)
# can build the CLI and the tests against its own PyTorch: nlohmann-json, stb, utf8proc, GoogleTest,
# libjpeg-turbo (JPEG decoding bit-identical to PIL's), the gloo headers.
# CMake finds them there (CMAKE_PREFIX_PATH includes third_party/); their CMake configs are
# relocatable.
set -euo pipefail
cd "$(dirname "$0")/../.."
T=third_party
A=lib/x86_64-linux-gnu
rm -rf "$T" && mkdir -p "$T/include" "$T/$A/cmake" "$T/share/cmake"
cp -r /usr/include/nlohmann "$T/include/"
cp -r /usr/share/cmake/nlohmann_json "$T/share/cmake/"
mkdir -p "$T/include/stb" && cp /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h "$T/include/stb/"
cp /usr/include/utf8proc.h "$T/include/"
cp /usr/$A/libstb.a /usr/$A/libutf8proc.a "$T/$A/"
cp /usr/include/jpeglib.h /usr/include/jerror.h /usr/include/jmorecfg.h /usr/include/x86_64-linux-gnu/jconfig.h "$T/include/"
cp /usr/$A/libjpeg.a "$T/$A/"
cp -r /usr/include/gloo "$T/include/"   # c10d's ProcessGroupGloo header needs them (the wheel has none)
cp -r /usr/include/gtest /usr/include/gmock "$T/include/"
cp /usr/$A/libgtest.a /usr/$A/libgtest_main.a /usr/$A/libgmock.a /usr/$A/libgmock_main.a "$T/$A/"
cp -r /usr/$A/cmake/GTest "$T/$A/cmake/"
strip --strip-debug "$T/$A"/*.a
# One small file to carry to the GPU machine (the device tool's tree limit); check_cuda.sh unpacks it.
tar -cJf third_party.tar.xz "$T"
du -sh "$T" third_party.tar.xz
