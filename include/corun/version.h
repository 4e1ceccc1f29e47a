#pragma once
#define CORUN_VERSION "0.1.0"
