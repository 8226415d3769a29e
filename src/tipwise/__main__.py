from tipwise.cli import main

main()
