# syntax=docker/dockerfile:1
# Images of the LLM gateway and of the reference worker, from one multi-stage build:
#   docker build --target gateway -t llm-gateway:dev .
#   docker build --target worker  -t llm-gateway-worker:dev .
# Layers: the restore layer depends only on the props files and project files, so editing sources re-runs
# publish but not restore. Runtime stages run as the image's non-root `app` user (uid 1654) and carry a
# HEALTHCHECK that needs neither curl nor wget (see deploy/docker/healthcheck.sh; docs/operations.md).
ARG DOTNET_VERSION=10.0

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
WORKDIR /src
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# 1) restore from project files only (cached until a csproj or props file changes)
COPY .editorconfig Directory.Build.props Directory.Packages.props ./
COPY src/Worker.Contract/Worker.Contract.csproj src/Worker.Contract/
COPY src/Llm.Prompt/Llm.Prompt.csproj src/Llm.Prompt/
COPY src/Gateway.Core/Gateway.Core.csproj src/Gateway.Core/
COPY src/Worker.Engine/Worker.Engine.csproj src/Worker.Engine/
COPY src/Worker.Cpu/Worker.Cpu.csproj src/Worker.Cpu/
COPY src/Worker.Gpu/Worker.Gpu.csproj src/Worker.Gpu/
COPY src/Worker.Hosting/Worker.Hosting.csproj src/Worker.Hosting/
COPY src/Cli/Cli.csproj src/Cli/
COPY src/Worker/Worker.csproj src/Worker/
COPY src/Gateway/Gateway.csproj src/Gateway/
RUN dotnet restore src/Gateway/Gateway.csproj \
 && dotnet restore src/Worker/Worker.csproj
# 2) sources
COPY src/ src/

FROM build AS publish-gateway
RUN dotnet publish src/Gateway/Gateway.csproj -c Release -o /out --no-restore -p:UseAppHost=false

FROM build AS publish-worker
RUN dotnet publish src/Worker/Worker.csproj -c Release -o /out --no-restore -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS runtime
WORKDIR /app
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1 \
    ASPNETCORE_ENVIRONMENT=Production
COPY --chmod=0755 deploy/docker/healthcheck.sh /usr/local/bin/healthcheck

FROM runtime AS worker
COPY --from=publish-worker /out .
# Server GC for the reference worker; the gateway's runtimeconfig picks workstation GC (Gateway.csproj: it keeps far
# less memory committed beyond its live heap under load spikes), so its image sets no DOTNET_gcServer.
ENV DOTNET_gcServer=1 \
    ASPNETCORE_URLS=http://+:8000 \
    HEALTHCHECK_PORT=8000
EXPOSE 8000
USER app
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/usr/local/bin/healthcheck", "8000", "/healthz"]
# Flags (profile, KV blocks, time scale ...) follow as container args: see `dotnet Worker.dll --help`.
ENTRYPOINT ["dotnet", "Worker.dll", "--urls", "http://0.0.0.0:8000"]

# Last stage: a plain `docker build .` produces the gateway image.
FROM runtime AS gateway
COPY --from=publish-gateway /out .
# The gateway binds Gateway:Listen (default 127.0.0.1:8080: loopback only), so the container sets all interfaces.
# MALLOC_ARENA_MAX=2: glibc's default (8 malloc arenas a core, each keeping its peak) let the gateway's native memory
# ratchet up with every burst of threads; two arenas hold it flat (docs/reliability.md, Soak).
ENV ASPNETCORE_URLS=http://+:8080 \
    MALLOC_ARENA_MAX=2 \
    Gateway__Listen=http://0.0.0.0:8080 \
    HEALTHCHECK_PORT=8080
EXPOSE 8080
USER app
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["/usr/local/bin/healthcheck", "8080", "/healthz"]
ENTRYPOINT ["dotnet", "Gateway.dll"]
