# switchyard on an NVIDIA CUDA devel image: the same Debian-family packages as
# scripts/setup.sh, then a Release build with the CUDA backend.
#   docker build -t switchyard .
#   docker run --gpus all switchyard train --config configs/default.yaml --set backend=cuda
FROM nvidia/cuda:13.0.0-devel-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /opt/switchyard
COPY scripts/setup.sh scripts/setup.sh
RUN bash scripts/setup.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN CMAKE_ARGS="-DSWITCHYARD_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=80;90" bash scripts/build.sh \
    && ln -s /opt/switchyard/build/switchyard /usr/local/bin/switchyard
ENTRYPOINT ["switchyard"]
CMD ["--help"]
