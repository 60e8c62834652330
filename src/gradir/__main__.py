from gradir.cli import main

main()
