from voipscope.cli.main import main

main()
