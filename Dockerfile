# syntax=docker/dockerfile:1
# Minimal multi-stage build; the operations issue completes it (worker target, health check details).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY src/Gateway.Core/Gateway.Core.csproj src/Gateway.Core/
COPY src/Worker.Engine/Worker.Engine.csproj src/Worker.Engine/
COPY src/Worker/Worker.csproj src/Worker/
COPY src/Gateway/Gateway.csproj src/Gateway/
RUN dotnet restore src/Gateway/Gateway.csproj
COPY src/ src/
RUN dotnet publish src/Gateway/Gateway.csproj -c Release -o /app --no-restore

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS gateway
WORKDIR /app
COPY --from=build /app .
USER app
EXPOSE 8080
ENTRYPOINT ["dotnet", "Gateway.dll", "--urls", "http://0.0.0.0:8080"]
