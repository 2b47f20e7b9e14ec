{
  "targets": [
    {
      "target_name": "timex",
      "sources": ["timex.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
